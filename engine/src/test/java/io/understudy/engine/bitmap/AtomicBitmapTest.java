package io.understudy.engine.bitmap;

import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AtomicBitmapTest
{
    @Test
    void randomOperationsMatchBitSetModel()
    {
        final long seed = System.nanoTime();
        final SplittableRandom random = new SplittableRandom(seed);
        for (final int size : new int[]{1, 63, 64, 65, 4095, 4097, 262_145, 300_000})
        {
            final BitSet model = new BitSet(size);
            try (AtomicBitmap bitmap = new AtomicBitmap(size))
            {
                for (int step = 0; step < 4000; step++)
                {
                    final String where = "seed " + seed + " size " + size + " step " + step;
                    final int bit = random.nextInt(size);
                    switch (random.nextInt(9))
                    {
                        case 0 ->
                        {
                            assertEquals(!model.get(bit), bitmap.testAndSet(bit), where);
                            model.set(bit);
                        }
                        case 1 ->
                        {
                            assertEquals(model.get(bit), bitmap.testAndClear(bit), where);
                            model.clear(bit);
                        }
                        case 2 ->
                        {
                            final int to = bit + random.nextInt(Math.min(size - bit, 700) + 1);
                            bitmap.setRange(bit, to);
                            model.set(bit, to);
                        }
                        case 3 ->
                        {
                            final int to = bit + random.nextInt(Math.min(size - bit, 700) + 1);
                            bitmap.clearRange(bit, to);
                            model.clear(bit, to);
                        }
                        case 4 ->
                        {
                            final int expected = model.nextSetBit(bit);
                            assertEquals(expected, bitmap.nextSetBit(bit), where);
                        }
                        case 5 ->
                        {
                            final int expected = model.nextClearBit(bit);
                            assertEquals(expected >= size ? -1 : expected, bitmap.nextClearBit(bit), where);
                        }
                        case 6 -> assertEquals(model.cardinality(), bitmap.cardinality(), where);
                        case 7 ->
                        {
                            if (random.nextInt(20) == 0)
                            {
                                bitmap.clearAll();
                                model.clear();
                            }
                            else
                            {
                                assertEquals(model.get(bit), bitmap.get(bit), where);
                            }
                        }
                        default ->
                        {
                            if (random.nextInt(30) == 0)
                            {
                                try (AtomicBitmap sink = new AtomicBitmap(size))
                                {
                                    sink.setRange(0, Math.min(size, 3));
                                    final BitSet expected = (BitSet)model.clone();
                                    expected.set(0, Math.min(size, 3));
                                    bitmap.drainTo(sink);
                                    assertTrue(bitmap.isEmpty(), where);
                                    assertEquals(expected.cardinality(), sink.cardinality(), where);
                                    for (int i = expected.nextSetBit(0); i >= 0; i = expected.nextSetBit(i + 1))
                                    {
                                        assertTrue(sink.get(i), where + " bit " + i);
                                    }
                                    model.clear();
                                }
                            }
                        }
                    }
                }
                assertEquals(model.cardinality(), bitmap.cardinality(), "seed " + seed);
                for (int i = 0; i < size; i++)
                {
                    assertEquals(model.get(i), bitmap.get(i), "seed " + seed + " bit " + i);
                }
            }
        }
    }

    @Test
    void terabyteDiskBitmapClearsOnlyItsDirtyPart()
    {
        final long bits = 1L << 28; // 1 TiB at 4 KiB clusters
        try (AtomicBitmap bitmap = new AtomicBitmap(bits))
        {
            assertEquals((1L << 22) * 8 + (1L << 16) * 8 + 1024 * 8 + 16 * 8 + 8, AtomicBitmap.requiredBytes(bits));
            final long dirtyStart = 3L << 24;
            bitmap.setRange(dirtyStart, dirtyStart + (1L << 18)); // 1 GiB dirty
            bitmap.testAndSet(bits - 1);
            assertEquals((1L << 18) + 1, bitmap.cardinality());
            assertEquals(dirtyStart, bitmap.nextSetBit(0));
            assertEquals(bits - 1, bitmap.nextSetBit(dirtyStart + (1L << 18)));
            assertEquals(dirtyStart + (1L << 18), bitmap.nextClearBit(dirtyStart));
            bitmap.clearAll();
            assertTrue(bitmap.isEmpty());
            assertEquals(0, bitmap.cardinality());
            assertFalse(bitmap.get(dirtyStart));
            assertEquals(0, bitmap.nextClearBit(0));
        }
    }

    @Test
    void rejectsOutOfRangeIndexes()
    {
        try (AtomicBitmap bitmap = new AtomicBitmap(100))
        {
            assertThrows(IndexOutOfBoundsException.class, () -> bitmap.testAndSet(100));
            assertThrows(IndexOutOfBoundsException.class, () -> bitmap.get(-1));
            assertThrows(IndexOutOfBoundsException.class, () -> bitmap.setRange(50, 101));
            assertEquals(-1, bitmap.nextSetBit(100));
            assertEquals(-1, bitmap.nextClearBit(100));
        }
    }

    /**
     * Exactly one of many racing test-and-set calls wins each bit, and every winner is counted.
     */
    @Test
    void racingTestAndSetHasExactlyOneWinnerPerBit() throws Exception
    {
        final int bits = 1 << 16;
        final int threads = 4;
        try (AtomicBitmap bitmap = new AtomicBitmap(bits))
        {
            final AtomicLong wins = new AtomicLong();
            final CountDownLatch start = new CountDownLatch(1);
            final Thread[] workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                final int offset = t * 7919;
                workers[t] = new Thread(() ->
                {
                    await(start);
                    long won = 0;
                    for (int i = 0; i < bits; i++)
                    {
                        if (bitmap.testAndSet((i + (long)offset) % bits))
                        {
                            won++;
                        }
                    }
                    wins.addAndGet(won);
                });
                workers[t].start();
            }
            start.countDown();
            for (final Thread worker : workers)
            {
                worker.join();
            }
            assertEquals(bits, wins.get());
            assertEquals(bits, bitmap.cardinality());
            assertEquals(-1, bitmap.nextClearBit(0));
        }
    }

    /**
     * Setters race a thread that clears all bits in a loop. Each setter owns its words, so after setting a bit
     * only a clear-all can reset it: whenever a scan from the bit does not find it, the bit must already read
     * as clear. A set bit hidden behind a clear summary (a wrong order of word and summary updates) fails here.
     */
    @Test
    void setBitsStayReachableThroughSummariesUnderConcurrentClearAll() throws Exception
    {
        // Small enough that setters keep hitting the summary words a clear-all is walking.
        final long bits = 1L << 13;
        final int setters = 3;
        final long seed = System.nanoTime();
        try (AtomicBitmap bitmap = new AtomicBitmap(bits))
        {
            final AtomicBoolean running = new AtomicBoolean(true);
            final AtomicReference<String> failure = new AtomicReference<>();
            final AtomicLong checks = new AtomicLong();
            final Thread clearer = new Thread(() ->
            {
                while (running.get())
                {
                    bitmap.clearAll();
                }
            });
            final Thread[] workers = new Thread[setters];
            for (int t = 0; t < setters; t++)
            {
                final int owner = t;
                workers[t] = new Thread(() ->
                {
                    final SplittableRandom random = new SplittableRandom(seed + owner);
                    final long deadline = System.nanoTime() + 1_500_000_000L;
                    long n = 0;
                    while (System.nanoTime() < deadline && failure.get() == null)
                    {
                        long word = random.nextLong(bits >>> 6);
                        word -= word % setters;
                        word += owner;
                        if (word >= bits >>> 6)
                        {
                            continue;
                        }
                        final long bit = (word << 6) + random.nextInt(64);
                        if ((n++ & 1) == 0)
                        {
                            bitmap.testAndSet(bit);
                        }
                        else
                        {
                            bitmap.setRange(bit, Math.min(bits, (word + 1) << 6));
                        }
                        final boolean found = bitmap.nextSetBit(bit) == bit;
                        if (!found && bitmap.get(bit))
                        {
                            failure.compareAndSet(null, "seed " + seed + ": bit " + bit + " set but unreachable");
                        }
                        checks.incrementAndGet();
                    }
                });
                workers[t].start();
            }
            clearer.start();
            for (final Thread worker : workers)
            {
                worker.join();
            }
            running.set(false);
            clearer.join();
            assertNull(failure.get());
            assertTrue(checks.get() > 1000, "too few observations: " + checks.get());
            long direct = 0;
            for (long bit = 0; bit < bits; bit++)
            {
                direct += bitmap.get(bit) ? 1 : 0;
            }
            assertEquals(direct, bitmap.cardinality(), "seed " + seed);
        }
    }

    private static void await(final CountDownLatch latch)
    {
        try
        {
            latch.await();
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }
}
