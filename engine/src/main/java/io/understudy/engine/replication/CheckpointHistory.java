package io.understudy.engine.replication;

import java.util.Arrays;

/**
 * Durations of the last {@value #CAPACITY} successful checkpoints, with the last one, the median and the 99th
 * percentile, so an operator sees whether checkpoints (which hold the guest's I/O) are getting slower.
 * <p>
 * The statistics are computed when a checkpoint is recorded, not when they are read: checkpoints are rare (a
 * few per second at most) while readers (a counters sampler in a duty cycle, status queries) poll often.
 * <p>
 * <b>Threads.</b> One writer at a time (the replication core's control operations are serialised); any number
 * of readers. Each figure is published with a volatile write after the ring was updated, and read with a
 * volatile read; a reader may see the figures of two consecutive checkpoints mixed, never a torn value.
 * Recording allocates nothing (the sort works in a preallocated scratch array).
 */
public final class CheckpointHistory
{
    /** How many durations the percentiles look at. */
    public static final int CAPACITY = 100;

    private final long[] ring = new long[CAPACITY];
    private final long[] sorted = new long[CAPACITY];
    private long recorded;
    private volatile long count;
    private volatile long lastNanos;
    private volatile long p50Nanos;
    private volatile long p99Nanos;

    /**
     * Adds one checkpoint's duration and recomputes the figures. Callers serialise calls.
     *
     * @param nanos the checkpoint's wall time.
     */
    public void record(final long nanos)
    {
        ring[(int)(recorded % CAPACITY)] = nanos;
        recorded++;
        final int size = (int)Math.min(recorded, CAPACITY);
        System.arraycopy(ring, 0, sorted, 0, size);
        Arrays.sort(sorted, 0, size);
        lastNanos = nanos;
        p50Nanos = percentile(size, 50);
        p99Nanos = percentile(size, 99);
        // Volatile write last: a reader that sees the new count sees the figures written before it.
        count = recorded;
    }

    /** @return checkpoints recorded since creation. */
    public long count()
    {
        return count;
    }

    /** @return duration of the last checkpoint, 0 before the first. */
    public long lastNanos()
    {
        return lastNanos;
    }

    /** @return the median duration of the last {@value #CAPACITY} checkpoints, 0 before the first. */
    public long p50Nanos()
    {
        return p50Nanos;
    }

    /** @return the 99th percentile duration of the last {@value #CAPACITY} checkpoints, 0 before the first. */
    public long p99Nanos()
    {
        return p99Nanos;
    }

    /** Nearest-rank percentile: the smallest value with at least {@code percent}% of the values at or below it. */
    private long percentile(final int size, final int percent)
    {
        final int rank = (size * percent + 99) / 100;
        return sorted[Math.max(rank, 1) - 1];
    }
}
