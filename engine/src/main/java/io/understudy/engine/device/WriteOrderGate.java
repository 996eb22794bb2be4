package io.understudy.engine.device;

import io.understudy.engine.concurrent.Waiters;

import java.lang.foreign.MemorySegment;

/**
 * Orders overlapping write-type requests (write, write-zeroes, discard): one that overlaps the byte range of an
 * earlier write-type request still in flight is held and submitted to the device below only once every earlier
 * overlapping request has completed, first come first served per conflict (DRBD's conflict detection). So for
 * overlapping requests completion order equals arrival order, whatever the device below does with concurrent
 * requests; requests that overlap nothing in flight pass at once.
 * <p>
 * <b>Why.</b> Two devices that get the same overlapping requests concurrently may each keep a different one
 * "last" (the primary's disk and the secondary's, spec INV-S and AX-11); a device below that runs requests in
 * parallel (io_uring, a thread pool, the COW filter) may keep either. In front of both disks of a pair the gate
 * makes every overlap land in one order, the order in which the requests arrived, which is also the order of
 * their replies. Reads, flushes and block status pass unchanged: reads racing overlapping writes are undefined
 * for a block device anyway, and a flush covers only writes completed before it was submitted, which a held
 * write is not.
 * <p>
 * <b>Bookkeeping.</b> Each accepted write-type request takes one of {@code capacity} preallocated slots (the
 * cookie passed below is the slot index), so nothing is allocated per request; with no free slot the caller sees
 * back-pressure ({@code false}). A slot records the range, an arrival sequence number, how many earlier
 * overlapping requests it still waits for and how many later ones wait for it. Arrival counts the overlapping
 * requests in flight; a completion delivers the request's own completion, then decrements the count of every
 * later overlapping one and submits those that reach zero, so a request runs only after the completions of all
 * its predecessors were delivered (their replies go out first, AX-11). The slot is freed after that: a caller
 * that submits again from inside its completion may see back-pressure when every slot is in use. Requests
 * that become ready together never overlap each other (the later of two overlapping requests counted the earlier
 * one), so their order does not matter. A request the device below refuses when it first passes is handed back to
 * the caller as back-pressure unless a later request already waits for it; such a request, and a held request
 * refused when it becomes ready, parks in {@link Waiters} and is retried (the former once right away), after every
 * completion here and by {@link #doWork()}. The waiters' wake-up counter, read before each attempt, closes the
 * race with a completion that frees room below in between: either that completion's signal finds the request
 * parked, or the request sees the changed counter and retries at once, so no request waits for a duty cycle that
 * may be idle.
 * <p>
 * <b>Why a lock.</b> Arrival and completion each scan the requests in flight (at most {@code capacity}, the
 * queue depth, typically a handful) under one short monitor, with no I/O, callback or allocation inside it;
 * submissions and completions below happen outside it. A lock-free version would need a concurrent interval
 * structure with the same counting for a gain that a handful of comparisons does not justify. A monitor, unlike
 * a {@code ReentrantLock}, allocates no queue node on the Java heap when contended.
 * <p>
 * Requests in flight here, held or not, are still in flight for whatever counts above (e.g. a checkpoint's
 * drain): their completion is only delivered once they ran on the device below. A held request never waits for
 * anything but its predecessors' completions, which the device below delivers even when it is closed.
 */
public final class WriteOrderGate extends ForwardingBlockDevice
{
    private static final int OP_WRITE = 1;
    private static final int OP_WRITE_ZEROES = 2;
    private static final int OP_DISCARD = 3;

    private final Object lock = new Object();
    private final Slot[] slots;
    /** Indexes of free slots, a stack; guarded by {@link #lock}. */
    private final int[] freeIndexes;
    /** Slots in flight (held, parked for a retry or below), unordered; guarded by {@link #lock}. */
    private final Slot[] active;
    private final Waiters<Slot> retries;
    private final IoCompletion fromBelow = this::onBelowComplete;
    private int freeCount;
    private int activeCount;
    private long nextSequence;
    /** Requests held behind an overlapping one since creation; written under the lock, read anywhere. */
    private volatile long heldTotal;

    /**
     * @param device   the device requests are sent to (not owned beyond {@link #close()}).
     * @param capacity write-type requests in flight at most (the queue depth of the caller).
     */
    public WriteOrderGate(final BlockDevice device, final int capacity)
    {
        super(device);
        if (capacity < 1)
        {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        this.slots = new Slot[capacity];
        this.freeIndexes = new int[capacity];
        this.active = new Slot[capacity];
        this.retries = new Waiters<>(capacity);
        for (int i = 0; i < capacity; i++)
        {
            slots[i] = new Slot(i);
            freeIndexes[i] = capacity - 1 - i;
        }
        this.freeCount = capacity;
    }

    /** @return write-type requests accepted and not yet completed (held ones included). */
    public int inFlight()
    {
        synchronized (lock)
        {
            return activeCount;
        }
    }

    /** @return requests that had to wait for an earlier overlapping request, since creation. */
    public long heldTotal()
    {
        return heldTotal;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return order(OP_WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return order(OP_WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return order(OP_DISCARD, offset, null, length, 0, completion, cookie);
    }

    /**
     * Submits requests that became ready while the device below pushed back. Call it from the owner's duty cycle.
     *
     * @return the number of requests that went on (see {@link Waiters#drain}).
     */
    public int doWork()
    {
        return retries.drain();
    }

    private boolean order(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        final Slot slot;
        synchronized (lock)
        {
            if (freeCount == 0)
            {
                return false;
            }
            slot = slots[freeIndexes[--freeCount]];
            slot.op = op;
            slot.offset = offset;
            slot.end = offset + Math.max(0, length);
            slot.buffer = buffer;
            slot.length = length;
            slot.flags = flags;
            slot.completion = completion;
            slot.cookie = cookie;
            slot.sequence = nextSequence++;
            slot.dependents = 0;
            int waitingFor = 0;
            for (int i = 0; i < activeCount; i++)
            {
                final Slot other = active[i];
                if (other.overlaps(slot))
                {
                    waitingFor++;
                    other.dependents++;
                }
            }
            slot.waitingFor = waitingFor;
            slot.position = activeCount;
            active[activeCount++] = slot;
            if (waitingFor > 0)
            {
                heldTotal++;
                // The completion of its last predecessor submits it; the lock publishes the fields set above.
                return true;
            }
        }
        final long observed = retries.observe();
        if (submit(slot))
        {
            return true;
        }
        synchronized (lock)
        {
            if (slot.dependents == 0)
            {
                // Nothing waits for it: as if it never came, the caller retries it (back-pressure as below).
                remove(slot);
                return false;
            }
        }
        // Later requests already wait for it, so it keeps its place in the order and is retried, once right away:
        // if nothing else is in flight below, no completion would come to retry it.
        retries.park(slot, slot.index, observed);
        retries.drain();
        return true;
    }

    private boolean submit(final Slot slot)
    {
        return switch (slot.op)
        {
            case OP_WRITE ->
                device.write(slot.offset, slot.buffer, (int)slot.length, slot.flags, fromBelow, slot.index);
            case OP_WRITE_ZEROES -> device.writeZeroes(slot.offset, slot.length, slot.flags, fromBelow, slot.index);
            default -> device.discard(slot.offset, slot.length, fromBelow, slot.index);
        };
    }

    private void onBelowComplete(final long index, final int result)
    {
        final Slot slot = slots[(int)index];
        // The caller's completion first, while the request still counts here: every request that waits for it is
        // submitted only after this completion was delivered. The fields were published by the lock (or the retry
        // queue) before the submission this completion answers.
        slot.completion.onComplete(slot.cookie, result);
        Slot ready = null;
        synchronized (lock)
        {
            remove(slot);
            for (int i = 0; i < activeCount; i++)
            {
                final Slot other = active[i];
                if (other.sequence > slot.sequence && other.overlaps(slot) && --other.waitingFor == 0)
                {
                    // Linked through the ready slots themselves: nobody else touches a slot whose count is zero
                    // until it is submitted, and the chain is walked by this thread alone.
                    other.nextReady = ready;
                    ready = other;
                }
            }
        }
        while (ready != null)
        {
            final Slot next = ready.nextReady;
            ready.nextReady = null;
            ready.run();
            ready = next;
        }
        // This completion freed room below: requests refused earlier may go now.
        retries.signal();
    }

    /** Takes the slot out of the active set and frees it; call it under the lock. */
    private void remove(final Slot slot)
    {
        final Slot last = active[--activeCount];
        active[slot.position] = last;
        last.position = slot.position;
        active[activeCount] = null;
        slot.completion = null;
        slot.buffer = null;
        freeIndexes[freeCount++] = slot.index;
    }

    /**
     * One accepted write-type request; every field but the chain link is guarded by the gate's lock. Running it
     * submits it below once it is ready, or parks it for a retry.
     */
    private final class Slot implements Runnable
    {
        private final int index;
        private int op;
        private long offset;
        private long end;
        private MemorySegment buffer;
        private long length;
        private int flags;
        private IoCompletion completion;
        private long cookie;
        private long sequence;
        /** Earlier overlapping requests not yet completed; the request is submitted when it reaches zero. */
        private int waitingFor;
        /** Later overlapping requests that counted this one. */
        private int dependents;
        /** Index in the active array. */
        private int position;
        /** Next slot that became ready in the same completion; owned by the completing thread. */
        private Slot nextReady;

        Slot(final int index)
        {
            this.index = index;
        }

        boolean overlaps(final Slot other)
        {
            return offset < other.end && other.offset < end;
        }

        @Override
        public void run()
        {
            // Observed before the attempt: a completion that frees room after the refusal changes the counter.
            final long observed = retries.observe();
            if (!submit(this))
            {
                retries.park(this, index, observed);
            }
        }
    }
}
