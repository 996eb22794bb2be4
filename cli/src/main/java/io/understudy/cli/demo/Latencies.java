package io.understudy.cli.demo;

import java.util.Arrays;

/**
 * Durations recorded into a preallocated array, for percentiles at the end of a run; samples beyond its
 * capacity are counted but not kept (the capacity is sized for the run, so that does not happen in practice).
 */
final class Latencies
{
    private final long[] samples;
    private int count;
    private long dropped;

    Latencies(final int capacity)
    {
        samples = new long[capacity];
    }

    void record(final long nanos)
    {
        if (count < samples.length)
        {
            samples[count++] = nanos;
        }
        else
        {
            dropped++;
        }
    }

    /** @return samples recorded, dropped ones included. */
    long count()
    {
        return count + dropped;
    }

    /** @return the nearest-rank percentile ({@code 0 < p <= 100}) of the kept samples, 0 if there are none. */
    long percentile(final double p)
    {
        if (count == 0)
        {
            return 0;
        }
        final long[] sorted = Arrays.copyOf(samples, count);
        Arrays.sort(sorted);
        final int rank = (int)Math.ceil(p / 100.0 * count);
        return sorted[Math.clamp(rank - 1, 0, count - 1)];
    }
}
