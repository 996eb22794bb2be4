package io.understudy.bench;

import io.understudy.engine.bitmap.AtomicBitmap;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * {@link AtomicBitmap} on a 1 TiB disk at 4 KiB clusters (2^28 bits): single-bit operations at random
 * positions, a scan, and make-empty (clear-all) with 1 GiB dirty, contiguous (4096 words) or scattered
 * (one bit in every 1024: 2^18 dirty words, the worst case for that much dirty data).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
public class BitmapBenchmark
{
    private static final long BITS = 1L << 28;
    private static final long DIRTY_BITS = 1L << 18; // 1 GiB at 4 KiB
    private static final int POSITIONS = 1 << 16;

    /** Single-bit operations and scans on a bitmap with 1 GiB dirty. */
    @State(Scope.Benchmark)
    public static class Hot
    {
        AtomicBitmap bitmap;
        final long[] positions = new long[POSITIONS];
        int next;

        @Setup
        public void setUp()
        {
            bitmap = new AtomicBitmap(BITS);
            bitmap.setRange(BITS / 2, BITS / 2 + DIRTY_BITS);
            final SplittableRandom random = new SplittableRandom(42);
            for (int i = 0; i < POSITIONS; i++)
            {
                positions[i] = random.nextLong(BITS);
            }
        }

        long position()
        {
            return positions[next++ & (POSITIONS - 1)];
        }

        @TearDown
        public void tearDown()
        {
            bitmap.close();
        }
    }

    /** A bitmap dirtied again (outside the measurement) before every make-empty. */
    @State(Scope.Benchmark)
    public static class Dirty
    {
        @Param({"contiguous", "scattered"})
        String pattern;
        AtomicBitmap bitmap;

        @Setup(Level.Trial)
        public void allocate()
        {
            bitmap = new AtomicBitmap(BITS);
        }

        @Setup(Level.Invocation)
        public void dirty()
        {
            if ("contiguous".equals(pattern))
            {
                bitmap.setRange(BITS / 3, BITS / 3 + DIRTY_BITS);
            }
            else
            {
                for (long bit = 0; bit < BITS; bit += BITS / DIRTY_BITS)
                {
                    bitmap.testAndSet(bit);
                }
            }
        }

        @TearDown(Level.Trial)
        public void tearDown()
        {
            bitmap.close();
        }
    }

    @Benchmark
    public boolean testAndSetThenClear(final Hot state)
    {
        final long bit = state.position();
        final boolean set = state.bitmap.testAndSet(bit);
        state.bitmap.testAndClear(bit);
        return set;
    }

    @Benchmark
    public boolean get(final Hot state)
    {
        return state.bitmap.get(state.position());
    }

    @Benchmark
    public boolean testAndSetAlreadySet(final Hot state)
    {
        return state.bitmap.testAndSet(BITS / 2 + (state.position() & (DIRTY_BITS - 1)));
    }

    @Benchmark
    public long nextSetBitFromRandom(final Hot state)
    {
        return state.bitmap.nextSetBit(state.position() & (BITS / 2 - 1));
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public void makeEmptyWith1GiBDirty(final Dirty state)
    {
        state.bitmap.clearAll();
    }

    @Benchmark
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public long cardinalityWith1GiBDirty(final Hot state)
    {
        return state.bitmap.cardinality();
    }
}
