package io.understudy.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicReference;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link BufferPool}: aligned distinct slots, exhaustion, and no slot ever handed to two holders at once. */
class BufferPoolTest
{
    @Test
    void slotsAreDistinctAlignedAndExhaustible()
    {
        try (BufferPool pool = new BufferPool(5000, 8))
        {
            assertEquals(8192, pool.slotSize(), "rounded up to the alignment");
            final Set<Integer> seen = new HashSet<>();
            for (int i = 0; i < 8; i++)
            {
                final int slot = pool.acquire();
                assertTrue(seen.add(slot), "slot " + slot + " handed out twice");
                final MemorySegment buffer = pool.buffer(slot);
                assertEquals(0, buffer.address() % BufferPool.ALIGNMENT);
                assertEquals(8192, buffer.byteSize());
            }
            assertEquals(-1, pool.acquire(), "exhausted");
            pool.release(3);
            assertEquals(3, pool.acquire());
        }
    }

    @Test
    @Timeout(60)
    void contendedAcquireAndReleaseNeverShareASlot() throws Exception
    {
        final int threads = 4;
        final int slots = 6; // fewer slots than threads * 2: exhaustion and reuse happen constantly
        final int iterations = 200_000;
        try (BufferPool pool = new BufferPool(4096, slots))
        {
            final AtomicIntegerArray owner = new AtomicIntegerArray(slots);
            final AtomicReference<String> violation = new AtomicReference<>();
            final CyclicBarrier start = new CyclicBarrier(threads);
            final Thread[] workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                final int id = t + 1;
                workers[t] = Thread.ofPlatform().start(() ->
                {
                    try
                    {
                        start.await();
                        final int[] held = new int[2];
                        for (int i = 0; i < iterations && violation.get() == null; i++)
                        {
                            int count = 0;
                            for (int k = 0; k < held.length; k++)
                            {
                                final int slot = pool.acquire();
                                if (slot < 0)
                                {
                                    break;
                                }
                                // Every observation is checked: nobody else may own the slot we just got.
                                if (!owner.compareAndSet(slot, 0, id))
                                {
                                    violation.compareAndSet(null, "slot " + slot + " held by " + owner.get(slot) +
                                        " handed to " + id);
                                }
                                pool.buffer(slot).set(JAVA_LONG, 0, ((long)id << 32) | i);
                                held[count++] = slot;
                            }
                            for (int k = 0; k < count; k++)
                            {
                                final int slot = held[k];
                                final long stamp = pool.buffer(slot).get(JAVA_LONG, 0);
                                if (stamp != (((long)id << 32) | i))
                                {
                                    violation.compareAndSet(null, "buffer of slot " + slot + " overwritten under " + id);
                                }
                                owner.set(slot, 0);
                                pool.release(slot);
                            }
                        }
                    }
                    catch (final Exception e)
                    {
                        violation.compareAndSet(null, e.toString());
                    }
                });
            }
            for (final Thread worker : workers)
            {
                worker.join();
            }
            assertNull(violation.get());
            final Set<Integer> all = new HashSet<>();
            for (int i = 0; i < slots; i++)
            {
                all.add(pool.acquire());
            }
            assertEquals(slots, all.size(), "every slot came back exactly once");
            assertTrue(!all.contains(-1));
            assertEquals(-1, pool.acquire());
        }
    }
}
