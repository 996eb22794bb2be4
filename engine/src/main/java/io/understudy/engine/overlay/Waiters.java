package io.understudy.engine.overlay;

import org.agrona.concurrent.ManyToManyConcurrentArrayQueue;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Requests of an asynchronous state machine that cannot go on yet (a cluster owned by another request,
 * back-pressure below) and must be resumed, never waited for by a thread.
 * <p>
 * Lost wake-ups are closed with a counter: a request reads {@link #observe()} before checking its
 * condition; whoever changes such a condition calls {@link #signal()} (increment, then drain); the request
 * parks itself and re-reads the counter. Either the signaller's drain sees the parked request, or the
 * request sees the changed counter and drains itself (both sides use volatile accesses).
 * <p>
 * Only one thread drains at a time (a work-in-progress counter; a signal arriving during a drain makes the
 * draining thread go round once more), so a parked request is resumed by exactly one thread.
 */
public final class Waiters<T extends Runnable>
{
    private final ManyToManyConcurrentArrayQueue<T> queue;
    private final AtomicLong wakeups = new AtomicLong();
    private final AtomicLong parks = new AtomicLong();
    private final AtomicInteger drainers = new AtomicInteger();

    /** @param capacity most waiters at once: the number of request slots (each parks at most once). */
    public Waiters(final int capacity)
    {
        this.queue = new ManyToManyConcurrentArrayQueue<>(capacity);
    }

    /** @return the wake-up count to pass to {@link #park}; read before checking the condition. */
    public long observe()
    {
        return wakeups.get();
    }

    /** Parks a request whose condition failed after {@code observed} was read. */
    public void park(final T waiter, final long observed)
    {
        if (!queue.offer(waiter))
        {
            throw new IllegalStateException("more waiters than request slots");
        }
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
        if (!queue.isEmpty())
        {
            drain();
        }
    }

    /** @return true if no request is parked. */
    public boolean isEmpty()
    {
        return queue.isEmpty();
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
            for (int i = queue.size(); i > 0; i--)
            {
                final T waiter = queue.poll();
                if (waiter == null)
                {
                    break;
                }
                resumed++;
                waiter.run();
            }
            missed = drainers.addAndGet(-missed);
            if (missed == 0)
            {
                return (int)Math.max(0, resumed - (parks.get() - parksBefore));
            }
        }
    }
}
