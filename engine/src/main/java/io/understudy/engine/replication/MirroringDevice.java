package io.understudy.engine.replication;

import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.concurrent.Waiters;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The non-shared primary's write path (spec 1.2, R5): every write-type request goes to the local disk and,
 * concurrently, to the {@link PeerLink}; it completes when both are done, with the <em>local</em> result.
 * The link never fails (it absorbs and reports peer failures), so a local error always reaches the guest
 * (AX-20) and a peer error never does. A failed local write also degrades the pair, since its forwarded twin
 * may have landed on the secondary. Reads are local only (INV-P).
 * <p>
 * <b>Discard is replicated as write-zeroes</b> (without NO_HOLE, so the local file may still punch a hole)
 * on both sides. A plain discard leaves the range "zeroes or old contents", and the two disks could answer
 * differently; zeroing both keeps P and S byte-identical, which a later failover or resync relies on (AX-06).
 * {@link #canDiscard()} reports whether the local disk really releases space.
 * <p>
 * Each request takes a preallocated slot (the cookie below is the slot index) with a two-part countdown. The
 * local part is submitted first (its back-pressure is the caller's); once it is under way the peer part can no
 * longer be refused, so if the link pushes back the slot parks in {@link Waiters} and is resubmitted once right
 * away, after every completion here (which may have freed room in the link) and by {@link #doWork()}, the owner's
 * duty cycle; no thread spins. The waiters' wake-up counter closes the race between a refusal and a completion
 * that frees room meanwhile.
 */
public final class MirroringDevice implements BlockDevice
{
    private static final int OP_WRITE = 1;
    private static final int OP_WRITE_ZEROES = 2;
    private static final int OP_FLUSH = 3;
    static final String REASON_LOCAL_WRITE = "local disk write failed: primary and secondary may differ there";

    private final BlockDevice local;
    private final PeerLink link;
    private final Slot[] slots;
    private final IndexStack freeSlots;
    /** Slots whose peer part the link pushed back. */
    private final Waiters<Slot> peerRetries;
    private final IoCompletion fromLocal = this::onLocalComplete;
    private final IoCompletion fromPeer = this::onPeerComplete;

    /**
     * @param local      the primary's disk (not owned).
     * @param link       forwarding to the secondary (not owned).
     * @param queueDepth write-type requests in flight at most.
     */
    public MirroringDevice(final BlockDevice local, final PeerLink link, final int queueDepth)
    {
        this.local = local;
        this.link = link;
        this.slots = new Slot[queueDepth];
        this.freeSlots = new IndexStack(queueDepth);
        this.peerRetries = new Waiters<>(queueDepth);
        for (int i = 0; i < queueDepth; i++)
        {
            slots[i] = new Slot(i);
        }
    }

    @Override
    public long size()
    {
        return local.size();
    }

    @Override
    public int alignment()
    {
        return Math.max(local.alignment(), link.alignment());
    }

    @Override
    public boolean isReadOnly()
    {
        return local.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        return local.canDiscard();
    }

    @Override
    public boolean canFastZero()
    {
        return local.canFastZero();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return local.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return mirror(OP_WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return mirror(OP_FLUSH, 0, null, 0, 0, completion, cookie);
    }

    /** Replicated as write-zeroes on both disks (see the class comment). */
    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return mirror(OP_WRITE_ZEROES, offset, null, length, 0, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return mirror(OP_WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return local.blockStatus(offset, length, sink);
    }

    /** Closes neither the local disk nor the link. */
    @Override
    public void close()
    {
    }

    private boolean mirror(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        final int index = freeSlots.pop();
        if (index == IndexStack.EMPTY)
        {
            return false;
        }
        final Slot slot = slots[index];
        slot.completion = completion;
        slot.cookie = cookie;
        slot.op = op;
        slot.offset = offset;
        slot.buffer = buffer;
        slot.length = length;
        slot.flags = flags;
        slot.localResult = 0;
        // Release (volatile set): the fields above are visible to whichever completion thread finishes last.
        slot.remaining.set(2);
        if (!submit(local, op, offset, buffer, length, flags, fromLocal, slot.index))
        {
            slot.completion = null;
            freeSlots.push(slot.index);
            return false;
        }
        if (!slot.submitPeer())
        {
            // Parked; retried once right away, since a local part that already completed leaves no completion
            // here to signal (the request may be the only one in flight).
            peerRetries.drain();
        }
        return true;
    }

    /**
     * Resubmits peer parts the link pushed back. Call it from the owner's duty cycle.
     *
     * @return the number of peer parts that went on (see {@link Waiters#drain}).
     */
    public int doWork()
    {
        return peerRetries.drain();
    }

    private static boolean submit(
        final BlockDevice device, final int op, final long offset, final MemorySegment buffer, final long length,
        final int flags, final IoCompletion completion, final long cookie)
    {
        return switch (op)
        {
            case OP_WRITE -> device.write(offset, buffer, (int)length, flags, completion, cookie);
            case OP_WRITE_ZEROES -> device.writeZeroes(offset, length, flags, completion, cookie);
            default -> device.flush(completion, cookie);
        };
    }

    private void onLocalComplete(final long index, final int result)
    {
        final Slot slot = slots[(int)index];
        // Plain write, published by the decrement in countDown.
        slot.localResult = result;
        if (result < 0 && slot.op != OP_FLUSH)
        {
            // The peer part ran concurrently and may have landed, so P and S can now differ in this range; the
            // next checkpoint would clear the dirty bitmap over it and hide that for good. Degrade instead: the
            // range stays dirty until a resync. (The guest still gets the local error, AX-20.)
            link.fail(-result, REASON_LOCAL_WRITE);
        }
        countDown(slot);
    }

    private void onPeerComplete(final long index, final int ignored)
    {
        countDown(slots[(int)index]);
    }

    private void countDown(final Slot slot)
    {
        // Acquire-release decrement: the last part sees the other part's result.
        if (slot.remaining.decrementAndGet() == 0)
        {
            final IoCompletion completion = slot.completion;
            final long cookie = slot.cookie;
            final int result = slot.localResult;
            slot.completion = null;
            slot.buffer = null;
            freeSlots.push(slot.index);
            completion.onComplete(cookie, result);
        }
        // A part completed, so the link or the local disk may have room for a peer part that was pushed back.
        peerRetries.signal();
    }

    /** One mirrored request; running it (re)submits its peer part. */
    private final class Slot implements Runnable
    {
        private final AtomicInteger remaining = new AtomicInteger();
        private final int index;
        private IoCompletion completion;
        private long cookie;
        private int op;
        private long offset;
        private MemorySegment buffer;
        private long length;
        private int flags;
        private int localResult;

        Slot(final int index)
        {
            this.index = index;
        }

        @Override
        public void run()
        {
            submitPeer();
        }

        /**
         * Submits the peer part, or parks the slot until a completion or the duty cycle retries it.
         *
         * @return false if it was parked.
         */
        boolean submitPeer()
        {
            // Observed before the attempt: a completion that frees room after the refusal changes the counter.
            final long observed = peerRetries.observe();
            if (submit(link, op, offset, buffer, length, flags, fromPeer, index))
            {
                return true;
            }
            peerRetries.park(this, index, observed);
            return false;
        }
    }
}
