package io.understudy.aeron;

import org.agrona.concurrent.IdleStrategy;

import java.util.concurrent.locks.LockSupport;

/**
 * The duty thread's idle strategy: spin, yield, then park for doubling periods, like Agrona's backoff strategy, but
 * with the longest park chosen by how recently messages were handled. While messages flow (handled within the last
 * {@code hotWindowNanos}) a park lasts at most {@code hotMaxParkNanos}, because every message of a round trip waits
 * for the next wake-up of a parked duty thread on each host: with parks of up to 1 ms, four of them could add
 * milliseconds to one request. After the window the parks grow to {@code idleMaxParkNanos}, which keeps an idle
 * link off a small host's cores.
 * <p>
 * What counts as handling messages: with {@code anyWorkCounts}, any work of the duty cycle (a standalone driver's
 * thread, which sees no links). Otherwise only {@link #messagesHandled()}, which the duty cycle calls when a link's
 * agent did work; the embedded driver's housekeeping (heartbeats of idle publications, status messages, timers:
 * dozens of events a second on an idle link) then neither starts the backoff over nor makes the thread hot. When it
 * did, each event bought 10 ms of short parks, and an idle link's duty thread used 11% of a core.
 * <p>
 * Not thread-safe: one duty thread owns it.
 */
final class RecentWorkIdleStrategy implements IdleStrategy
{
    private final int maxSpins;
    private final int maxYields;
    private final long minParkNanos;
    private final long hotMaxParkNanos;
    private final long idleMaxParkNanos;
    private final long hotWindowNanos;
    private final boolean anyWorkCounts;
    private long lastWorkNanos;
    private int spins;
    private int yields;
    private long parkNanos;

    RecentWorkIdleStrategy(
        final int maxSpins, final int maxYields, final long minParkNanos, final long hotMaxParkNanos,
        final long idleMaxParkNanos, final long hotWindowNanos, final boolean anyWorkCounts)
    {
        if (minParkNanos <= 0 || hotMaxParkNanos < minParkNanos || idleMaxParkNanos < hotMaxParkNanos)
        {
            throw new IllegalArgumentException("need 0 < minPark <= hotMaxPark <= idleMaxPark");
        }
        this.maxSpins = maxSpins;
        this.maxYields = maxYields;
        this.minParkNanos = minParkNanos;
        this.hotMaxParkNanos = hotMaxParkNanos;
        this.idleMaxParkNanos = idleMaxParkNanos;
        this.hotWindowNanos = hotWindowNanos;
        this.anyWorkCounts = anyWorkCounts;
        this.lastWorkNanos = System.nanoTime() - hotWindowNanos;
        reset();
    }

    /** Messages were handled: the thread is hot, and the backoff starts over. */
    void messagesHandled()
    {
        lastWorkNanos = System.nanoTime();
        reset();
    }

    @Override
    public void idle(final int workCount)
    {
        if (workCount > 0)
        {
            if (anyWorkCounts)
            {
                messagesHandled();
            }
            return;
        }
        idle();
    }

    @Override
    public void idle()
    {
        if (spins < maxSpins)
        {
            spins++;
            Thread.onSpinWait();
            return;
        }
        if (yields < maxYields)
        {
            yields++;
            Thread.yield();
            return;
        }
        LockSupport.parkNanos(nextPark(System.nanoTime()));
    }

    /** @return how long the park at {@code nowNanos} lasts; the next one may be twice as long, up to the cap. */
    long nextPark(final long nowNanos)
    {
        final long cap = nowNanos - lastWorkNanos < hotWindowNanos ? hotMaxParkNanos : idleMaxParkNanos;
        final long park = Math.min(parkNanos, cap);
        parkNanos = Math.min(park << 1, idleMaxParkNanos);
        return park;
    }

    @Override
    public void reset()
    {
        spins = 0;
        yields = 0;
        parkNanos = minParkNanos;
    }

    @Override
    public String alias()
    {
        return "recent-work";
    }
}
