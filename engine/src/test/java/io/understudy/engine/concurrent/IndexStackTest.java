package io.understudy.engine.concurrent;

import org.junit.jupiter.api.Test;

import java.util.BitSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IndexStackTest
{
    @Test
    void aFullStackHandsOutEveryIndexOnceThenReportsEmpty()
    {
        final IndexStack stack = new IndexStack(3);
        assertEquals(0, stack.pop());
        assertEquals(1, stack.pop());
        assertEquals(2, stack.pop());
        assertEquals(IndexStack.EMPTY, stack.pop());
        assertTrue(stack.isEmpty());
        stack.push(1);
        assertFalse(stack.isEmpty());
        assertEquals(1, stack.pop());
        assertThrows(IllegalArgumentException.class, () -> stack.push(3));
    }

    @Test
    void popAllDetachesAChainThatLaterPushesDoNotTouch()
    {
        final IndexStack stack = IndexStack.empty(4);
        assertTrue(stack.isEmpty());
        assertEquals(IndexStack.EMPTY, stack.popAll());
        stack.push(2);
        stack.push(0);
        stack.push(3);
        final int top = stack.popAll();
        assertTrue(stack.isEmpty());
        stack.push(1);
        assertEquals(3, top);
        assertEquals(0, stack.below(3));
        assertEquals(2, stack.below(0));
        assertEquals(IndexStack.EMPTY, stack.below(2));
        assertEquals(1, stack.pop());
        assertEquals(IndexStack.EMPTY, stack.pop());
    }

    /**
     * The free-list use: threads (more than cores, so they are preempted anywhere) take an index and give it back,
     * over and over; popAll sweeps in too. No index may be lost or handed out twice. That is what Agrona's
     * ManyToManyConcurrentArrayQueue failed at as a free list (capacity = elements): its offer reports "full" while
     * a preempted poller has not released its cell, and 2 threads cycling 16 elements through it lost 15 within a
     * second in a standalone check.
     */
    @Test
    void indexesCycledByPreemptedThreadsAreNeverLostNorDuplicated() throws InterruptedException
    {
        final int capacity = 16;
        final IndexStack stack = new IndexStack(capacity);
        final int[] owners = new int[capacity];
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        final long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
        final Thread[] threads = new Thread[6];
        for (int t = 0; t < threads.length; t++)
        {
            final int thread = t;
            threads[t] = Thread.ofPlatform().name("cycler-" + t).start(() ->
            {
                try
                {
                    final int[] held = new int[capacity];
                    while (System.nanoTime() < end)
                    {
                        int count = 0;
                        if (thread == 0)
                        {
                            for (int index = stack.popAll(); index != IndexStack.EMPTY; index = stack.below(index))
                            {
                                held[count++] = index;
                            }
                        }
                        else
                        {
                            final int index = stack.pop();
                            if (index != IndexStack.EMPTY)
                            {
                                held[count++] = index;
                            }
                        }
                        for (int i = 0; i < count; i++)
                        {
                            // Plain fields, each touched only by the index's current holder: the stack's CASes
                            // order the handovers. A second holder at once would see a foreign mark.
                            assertEquals(0, owners[held[i]], "index " + held[i] + " handed out twice");
                            owners[held[i]] = thread + 1;
                        }
                        for (int i = 0; i < count; i++)
                        {
                            assertEquals(thread + 1, owners[held[i]], "index " + held[i] + " changed hands");
                            owners[held[i]] = 0;
                            stack.push(held[i]);
                        }
                    }
                }
                catch (final Throwable e)
                {
                    failure.compareAndSet(null, e);
                }
            });
        }
        for (final Thread thread : threads)
        {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        }
        assertNull(failure.get());
        final BitSet seen = new BitSet(capacity);
        for (int index = stack.pop(); index != IndexStack.EMPTY; index = stack.pop())
        {
            assertFalse(seen.get(index), "index " + index + " twice in the stack");
            seen.set(index);
        }
        assertEquals(capacity, seen.cardinality(), "indexes lost");
    }
}
