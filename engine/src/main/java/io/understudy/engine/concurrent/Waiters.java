package io.understudy.engine.concurrent;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Requests of an asynchronous state machine that cannot go on yet (a cluster owned by another request,
 * back-pressure below) and must be resumed, never waited for by a thread. Each request is one of a fixed set
 * of preallocated slots and parks under its slot index, so parking allocates nothing and cannot fail.
 * <p>
 * Lost wake-ups are closed with a counter: a request reads {@link #observe()} before checking its
 * condition; whoever changes such a condition calls {@link #signal()} (increment, then drain); the request
 * parks itself and re-reads the counter. Either the signaller's drain sees the parked request, or the
 * request sees the changed counter and drains itself (both sides use volatile accesses).
 * <p>
 * Only one thread drains at a time (a work-in-progress counter; a signal arriving during a drain makes the
 * draining thread go round once more), so a parked request is resumed by exactly one thread. Each round
 * detaches every parked request at once and resumes them in turn; one that parks again is not run again in that
 * round, only in a later one (the drain goes round again if a signal came meanwhile). The order of resumption
 * carries no meaning: every parked request is resumed in each round.
 *
 * @param <T> the request type; running it resumes the request.
 */
public final class Waiters<T extends Runnable>
{
    private final IndexStack parked;
    /** The request parked under each index; written before the push that publishes it. */
    private final Runnable[] waiters;
    private final AtomicLong wakeups = new AtomicLong();
    private final AtomicLong parks = new AtomicLong();
    private final AtomicInteger drainers = new AtomicInteger();

    /** @param capacity request slots: indexes {@code [0, capacity)} may park, each at most once at a time. */
    public Waiters(final int capacity)
    {
        this.parked = IndexStack.empty(capacity);
        this.waiters = new Runnable[capacity];
    }

    /** @return the wake-up count to pass to {@link #park}; read before checking the condition. */
    public long observe()
    {
        return wakeups.get();
    }

    /** Parks the request of slot {@code index}, whose condition failed after {@code observed} was read. */
    public void park(final T waiter, final int index, final long observed)
    {
        waiters[index] = waiter;
        parked.push(index);
        parks.incrementAndGet();
        if (wakeups.get() != observed)
        {
            drain();
        }
    }

    /** Something waiters may wait for has changed: resume them. */
    public void signal()
    {
        wakeups.incrementAndGet();
        if (!parked.isEmpty())
        {
            drain();
        }
    }

    /** @return true if no request is parked. */
    public boolean isEmpty()
    {
        return parked.isEmpty();
    }

    /**
     * Resumes parked requests (each may park again).
     *
     * @return requests resumed by this call less the parks meanwhile: the progress a duty cycle reports, so that
     * requests still blocked make its thread back off instead of spinning on them. Parks by other threads also
     * count against it, which at worst makes one duty cycle idle early.
     */
    public int drain()
    {
        if (drainers.getAndIncrement() != 0)
        {
            return 0;
        }
        final long parksBefore = parks.get();
        int resumed = 0;
        int missed = 1;
        while (true)
        {
            int index = parked.popAll();
            while (index != IndexStack.EMPTY)
            {
                // The link first: the request may park again while it runs, which relinks its index.
                final int below = parked.below(index);
                resumed++;
                waiters[index].run();
                index = below;
            }
            missed = drainers.addAndGet(-missed);
            if (missed == 0)
            {
                return (int)Math.max(0, resumed - (parks.get() - parksBefore));
            }
        }
    }
}
