package io.understudy.engine.replication;

import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The door of a replicated device: every request of one entry point (the forwarding sink, the SVM view, the
 * guest's disk) passes it, so the replication layer can count what is in flight, hold requests back while a
 * checkpoint or commit needs the devices below quiescent, and refuse them with a chosen errno outside the
 * stages that allow them (spec 2.2, "I/O gating").
 * <p>
 * <b>Gate states</b>:
 * <pre>
 *   OPEN          every request passes
 *   WRITES_HELD   reads pass, write-type requests (write, write-zeroes, discard, flush) see back-pressure
 *   HELD          every request sees back-pressure ({@code false}: the caller retries later)
 *   REFUSING      every request completes at once with the gate's errno (nothing reaches the device)
 * </pre>
 * Back-pressure rather than failure while held: a checkpoint is a short, normal event the caller (an NBD
 * server's duty cycle) simply waits out, whereas REFUSING is for stages in which the request can never
 * succeed.
 * <p>
 * <b>Quiescing</b> is a Dekker handshake: a submitter increments {@link #inFlight} and then reads the state;
 * {@link #awaitIdle} is called after the state was changed and reads the count. Both are volatile accesses
 * (sequentially consistent), so every request is either refused/held or counted and waited for.
 * <p>
 * Each admitted request takes one of {@code queueDepth} preallocated slots (the cookie passed below is the
 * slot index), so no allocation happens per request. The device below can be replaced ({@link #delegate})
 * between requests, e.g. the SVM view switching from {@code A > H > S} to {@code S} once a failover commit
 * completed; requests in flight complete on the device they were sent to.
 */
public final class GatedDevice implements BlockDevice
{
    public static final int OPEN = 0;
    public static final int WRITES_HELD = 1;
    public static final int HELD = 2;
    public static final int REFUSING = 3;

    private static final long IDLE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    /** Receives the range of every admitted write-type request, before it is sent below (dirty tracking). */
    @FunctionalInterface
    public interface WriteObserver
    {
        void onWrite(long offset, long length);
    }

    private final long size;
    private final Slot[] slots;
    private final IndexStack freeSlots;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final WriteObserver observer;
    private volatile BlockDevice delegate;
    private volatile int state;
    private volatile int refusal;

    /**
     * @param delegate   the device requests are sent to (may be null while the gate refuses everything).
     * @param size       size of the device behind the gate, fixed.
     * @param queueDepth requests in flight at most (more see back-pressure).
     * @param observer   told about admitted write-type requests, or null.
     * @param refusal    positive errno the gate refuses with until it is opened.
     */
    public GatedDevice(
        final BlockDevice delegate, final long size, final int queueDepth, final WriteObserver observer,
        final int refusal)
    {
        if (queueDepth < 1)
        {
            throw new IllegalArgumentException("queueDepth must be positive: " + queueDepth);
        }
        this.delegate = delegate;
        this.size = size;
        this.observer = observer;
        this.refusal = refusal;
        this.state = REFUSING;
        this.slots = new Slot[queueDepth];
        this.freeSlots = new IndexStack(queueDepth);
        for (int i = 0; i < queueDepth; i++)
        {
            slots[i] = new Slot(i);
        }
    }

    /** @return the current gate state ({@link #OPEN}, {@link #WRITES_HELD}, {@link #HELD}, {@link #REFUSING}). */
    public int state()
    {
        return state;
    }

    public void open()
    {
        state = OPEN;
    }

    public void hold()
    {
        state = HELD;
    }

    public void holdWrites()
    {
        state = WRITES_HELD;
    }

    /** Refuses every request from now on with {@code errno} (positive); requests in flight still complete. */
    public void refuse(final int errno)
    {
        refusal = errno;
        state = REFUSING;
    }

    /** @return requests admitted and not yet completed. */
    public int inFlight()
    {
        return inFlight.get();
    }

    public BlockDevice delegate()
    {
        return delegate;
    }

    /** Replaces the device below; call it while the gate holds or refuses requests. */
    public void delegate(final BlockDevice device)
    {
        delegate = device;
    }

    /**
     * Waits until no admitted request is in flight; call it after {@link #hold} or {@link #refuse}. Blocks the
     * (control) calling thread, never beyond {@code deadlineNanos} ({@link System#nanoTime()} based).
     *
     * @return true if idle, false if the deadline passed first.
     */
    public boolean awaitIdle(final long deadlineNanos)
    {
        while (inFlight.get() > 0)
        {
            if (System.nanoTime() - deadlineNanos >= 0)
            {
                return false;
            }
            LockSupport.parkNanos(IDLE_POLL_NANOS);
        }
        return true;
    }

    @Override
    public long size()
    {
        return size;
    }

    @Override
    public int alignment()
    {
        final BlockDevice device = delegate;
        return device == null ? 1 : device.alignment();
    }

    @Override
    public boolean isReadOnly()
    {
        final BlockDevice device = delegate;
        return device != null && device.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        final BlockDevice device = delegate;
        return device != null && device.canDiscard();
    }

    @Override
    public boolean canFastZero()
    {
        final BlockDevice device = delegate;
        return device != null && device.canFastZero();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        final int admission = admit(false);
        if (admission != 0)
        {
            return refused(admission, completion, cookie);
        }
        final Slot slot = take();
        if (slot == null)
        {
            return false;
        }
        slot.arm(completion, cookie);
        return sent(slot, delegate.read(offset, buffer, length, slot, slot.index));
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        final int admission = admit(true);
        if (admission != 0)
        {
            return refused(admission, completion, cookie);
        }
        final Slot slot = take();
        if (slot == null)
        {
            return false;
        }
        observe(offset, length);
        slot.arm(completion, cookie);
        return sent(slot, delegate.write(offset, buffer, length, flags, slot, slot.index));
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        final int admission = admit(true);
        if (admission != 0)
        {
            return refused(admission, completion, cookie);
        }
        final Slot slot = take();
        if (slot == null)
        {
            return false;
        }
        slot.arm(completion, cookie);
        return sent(slot, delegate.flush(slot, slot.index));
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        final int admission = admit(true);
        if (admission != 0)
        {
            return refused(admission, completion, cookie);
        }
        final Slot slot = take();
        if (slot == null)
        {
            return false;
        }
        observe(offset, length);
        slot.arm(completion, cookie);
        return sent(slot, delegate.discard(offset, length, slot, slot.index));
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        final int admission = admit(true);
        if (admission != 0)
        {
            return refused(admission, completion, cookie);
        }
        final Slot slot = take();
        if (slot == null)
        {
            return false;
        }
        observe(offset, length);
        slot.arm(completion, cookie);
        return sent(slot, delegate.writeZeroes(offset, length, flags, slot, slot.index));
    }

    /** Answers from the device below without gating: block status is synchronous metadata, not I/O. */
    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        final BlockDevice device = delegate;
        if (state == REFUSING || device == null)
        {
            return -refusal;
        }
        return device.blockStatus(offset, length, sink);
    }

    /** Refuses new requests with ESHUTDOWN; requests in flight complete through the device below. */
    @Override
    public void close()
    {
        refuse(Errno.ESHUTDOWN);
    }

    /**
     * Counts the request in, then checks the state (the order matters, see the class comment).
     *
     * @return 0 if admitted (counted), 1 for back-pressure, else the negated errno to refuse with.
     */
    private int admit(final boolean writeType)
    {
        inFlight.incrementAndGet();
        final int current = state;
        if (current == OPEN || (current == WRITES_HELD && !writeType))
        {
            return 0;
        }
        inFlight.decrementAndGet();
        return current == REFUSING ? -refusal : 1;
    }

    private static boolean refused(final int admission, final IoCompletion completion, final long cookie)
    {
        if (admission > 0)
        {
            return false;
        }
        completion.onComplete(cookie, admission);
        return true;
    }

    private Slot take()
    {
        final int index = freeSlots.pop();
        if (index == IndexStack.EMPTY)
        {
            inFlight.decrementAndGet();
            return null;
        }
        return slots[index];
    }

    private void observe(final long offset, final long length)
    {
        if (observer != null)
        {
            observer.onWrite(offset, length);
        }
    }

    private boolean sent(final Slot slot, final boolean accepted)
    {
        if (!accepted)
        {
            slot.release();
        }
        return accepted;
    }

    /** One admitted request: remembers the caller's completion and cookie. */
    private final class Slot implements IoCompletion
    {
        private final int index;
        private IoCompletion completion;
        private long cookie;

        Slot(final int index)
        {
            this.index = index;
        }

        void arm(final IoCompletion completion, final long cookie)
        {
            this.completion = completion;
            this.cookie = cookie;
        }

        void release()
        {
            completion = null;
            freeSlots.push(index);
            inFlight.decrementAndGet();
        }

        @Override
        public void onComplete(final long ignored, final int result)
        {
            final IoCompletion callerCompletion = completion;
            final long callerCookie = cookie;
            // Slot first, so the caller's completion may submit again at once; the count after, so a quiescer
            // that sees zero knows the device below has finished with every admitted request.
            completion = null;
            freeSlots.push(index);
            inFlight.decrementAndGet();
            callerCompletion.onComplete(callerCookie, result);
        }
    }
}
