package io.understudy.engine.overlay;

import io.understudy.engine.concurrent.Waiters;
import io.understudy.engine.device.IoCompletion;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * A preallocated request slot of a layered device that runs as a state machine issuing one sub-request at a
 * time to the devices below it, resumed by each sub-request's completion on whatever thread delivers it; no
 * thread ever waits. {@link io.understudy.engine.cow.CowFilter} and {@link OverlayDevice} are built on it.
 * <p>
 * A subclass plans the next sub-request ({@link #plan()}, setting {@link #io}), submits it
 * ({@link #submitIo()}), applies its result ({@link #completed(int)}, which first resets {@link #io} to
 * {@link #IO_NONE}) and hands the outcome to its caller ({@link #finish()}) once {@link #isDone()}. A step
 * that cannot go on (a cluster owned by another request, back-pressure below) parks the request in
 * {@link Waiters} until someone signals a change.
 * <p>
 * <b>Hand-over between submitter and completion.</b> A sub-request may complete inline, on another thread
 * before its submit call returns, or long after. The {@code guard} decides which thread continues the state
 * machine, so exactly one ever touches the request's fields at a time:
 * <pre>
 *   submitter                              completion
 *   guard = SUBMITTING  (volatile write)
 *   submit sub-request  ------------------>  ioResult = r  (plain write)
 *                                            CAS SUBMITTING -> COMPLETED_EARLY
 *   CAS SUBMITTING -> AWAITING                 won:  return, the submitter continues
 *     won:  return, the completion continues   lost: guard was AWAITING, continue here
 *     lost: guard = IDLE, continue here
 * </pre>
 * Both transitions out of SUBMITTING are CASes on one volatile, so exactly one of them succeeds. If the
 * completion wins, its plain write of {@code ioResult} precedes its successful CAS, which the submitter's
 * failing CAS reads: the submitter sees the result. If the submitter wins, every field it wrote while
 * planning precedes its successful CAS, which the completion's failing CAS reads, and the submitter touches
 * nothing after it: the completion sees a consistent request. A refused submission (back-pressure) brings no
 * completion, so the submitter resets the guard to IDLE and parks. A parked request is resumed through
 * {@link Waiters}, whose park and drain (compare-and-sets on one stack head) order the parking thread's writes
 * before the resuming thread's reads.
 * <p>
 * <b>Lost wake-ups.</b> Each step reads {@link Waiters#observe()} before checking the conditions it may block
 * on, and parks with that observation; every completion signals the waiters after it has moved on, since the
 * sub-request's effect (a released cluster, room in the queue below) may be what others wait for.
 */
public abstract class SteppedRequest implements IoCompletion, Runnable
{
    /** The step made progress without I/O: plan again. */
    protected static final int STEP_CONTINUE = 0;
    /** A sub-request is planned (from {@link #plan()}), or was submitted and its completion will resume us. */
    protected static final int STEP_ASYNC = 1;
    /** The request cannot go on until something changes: park it. */
    protected static final int STEP_BLOCKED = 2;

    /** Value of {@link #io} when no sub-request is planned or in flight; subclasses number theirs from 1. */
    protected static final int IO_NONE = 0;

    private static final int GUARD_IDLE = 0;
    private static final int GUARD_SUBMITTING = 1;
    private static final int GUARD_COMPLETED_EARLY = 2;
    private static final int GUARD_AWAITING = 3;

    private final Waiters<SteppedRequest> parked;
    private final int slot;
    private final AtomicInteger guard = new AtomicInteger();
    /** Result of the last sub-request, published by the guard's CAS (see the class comment). */
    private int ioResult;

    /** The sub-request planned or in flight, {@link #IO_NONE} between sub-requests. */
    protected int io;

    /**
     * @param waiters where this request parks while blocked, shared by the device's request slots.
     * @param slot    this request's index among them, unique in {@code [0, capacity of waiters)}.
     */
    protected SteppedRequest(final Waiters<SteppedRequest> waiters, final int slot)
    {
        this.parked = waiters;
        this.slot = slot;
    }

    /** @return this request's slot index (its place in the device's free list). */
    protected final int slot()
    {
        return slot;
    }

    /** Drives the state machine until it waits for a completion, blocks, or finishes. */
    @Override
    public final void run()
    {
        while (true)
        {
            if (io == IO_NONE && isDone())
            {
                finish();
                return;
            }
            final long observedWakeups = parked.observe();
            final int step = step();
            if (step == STEP_ASYNC)
            {
                return;
            }
            if (step == STEP_BLOCKED)
            {
                parked.park(this, slot, observedWakeups);
                return;
            }
        }
    }

    @Override
    public final void onComplete(final long ignored, final int subResult)
    {
        ioResult = subResult;
        if (guard.compareAndSet(GUARD_SUBMITTING, GUARD_COMPLETED_EARLY))
        {
            return; // the submitting thread continues once its submit call returns
        }
        completed(subResult);
        run();
        wakeWaiters();
    }

    /** Plans (if needed) and submits the next sub-request. */
    private int step()
    {
        if (io == IO_NONE)
        {
            final int planned = plan();
            if (planned != STEP_ASYNC)
            {
                return planned;
            }
        }
        guard.set(GUARD_SUBMITTING);
        if (!submitIo())
        {
            guard.set(GUARD_IDLE);
            return STEP_BLOCKED;
        }
        if (guard.compareAndSet(GUARD_SUBMITTING, GUARD_AWAITING))
        {
            return STEP_ASYNC;
        }
        guard.set(GUARD_IDLE);
        completed(ioResult);
        return STEP_CONTINUE;
    }

    /** @return true when, with no sub-request pending, the request has its outcome. */
    protected abstract boolean isDone();

    /**
     * Chooses the next sub-request into {@link #io}; called only when {@code io == IO_NONE} and not done.
     *
     * @return {@link #STEP_ASYNC} when one was chosen, else {@link #STEP_CONTINUE} or {@link #STEP_BLOCKED}.
     */
    protected abstract int plan();

    /** Submits the sub-request {@link #io} with this as its completion. @return false on back-pressure. */
    protected abstract boolean submitIo();

    /** Applies the result of the sub-request {@link #io}; sets {@code io} to {@link #IO_NONE} or the next one. */
    protected abstract void completed(int ioResult);

    /** Recycles the slot and completes the caller's request. */
    protected abstract void finish();

    /** Resumes parked requests after a completion; a device may signal more (e.g. a stalled background job). */
    protected abstract void wakeWaiters();
}
