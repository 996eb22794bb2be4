package io.understudy.engine.device;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Test load: {@code threads} submitters, each keeping {@code depth} write-type requests (writes of a pattern
 * unique to the request, some write-zeroes) in flight on random, heavily overlapping 512-byte-aligned ranges of
 * {@code [0, span)}, each with its own buffer. Records every request in the order its completion was delivered,
 * which is the exact model of a device that orders overlapping requests: replaying the record gives its bytes.
 */
public final class OverlappingWriters
{
    private static final int UNIT = 512;
    private static final int MAX_UNITS = 8;

    private final List<long[]> completions = Collections.synchronizedList(new ArrayList<>());

    /** Runs the load to its end (every request completed) and fails the test on any error or hang. */
    public void run(final BlockDevice device, final int span, final int threads, final int depth, final int perThread)
        throws InterruptedException
    {
        try (Arena arena = Arena.ofShared())
        {
            final Thread[] submitters = new Thread[threads];
            final AtomicReference<Throwable> failure = new AtomicReference<>();
            for (int t = 0; t < threads; t++)
            {
                final int thread = t;
                final MemorySegment[] buffers = new MemorySegment[depth];
                for (int i = 0; i < depth; i++)
                {
                    buffers[i] = arena.allocate(MAX_UNITS * UNIT, 4096);
                }
                submitters[t] = Thread.ofPlatform().name("overlapping-writer-" + t).start(() ->
                {
                    try
                    {
                        submit(device, span, thread, perThread, buffers);
                    }
                    catch (final Throwable e)
                    {
                        failure.set(e);
                    }
                });
            }
            for (final Thread submitter : submitters)
            {
                submitter.join(TimeUnit.SECONDS.toMillis(120));
                assertFalse(submitter.isAlive(), submitter.getName() + " still waits after 120 s: " +
                    completions.size() + " of " + threads * perThread + " requests completed, the rest were lost");
            }
            assertNull(failure.get());
            assertEquals(threads * perThread, completions.size());
        }
    }

    /** @return the bytes of {@code [0, span)} after replaying every request in completion order over zeroes. */
    public byte[] model(final int span)
    {
        final byte[] bytes = new byte[span];
        synchronized (completions)
        {
            for (final long[] request : completions)
            {
                Arrays.fill(bytes, (int)request[0], (int)(request[0] + request[1]), (byte)request[2]);
            }
        }
        return bytes;
    }

    private void submit(
        final BlockDevice device, final int span, final int thread, final int count, final MemorySegment[] buffers)
        throws InterruptedException
    {
        final ThreadLocalRandom random = ThreadLocalRandom.current();
        final int depth = buffers.length;
        final boolean[] busy = new boolean[depth];
        final int[] results = new int[] {0};
        final Object monitor = new Object();
        for (int n = 0; n < count; n++)
        {
            final int slot = takeSlot(monitor, busy);
            final long offset = (long)random.nextInt(span / UNIT - MAX_UNITS) * UNIT;
            final int length = random.nextInt(1, MAX_UNITS + 1) * UNIT;
            final boolean zeroes = random.nextInt(8) == 0;
            final byte value = zeroes ? 0 : (byte)(1 + (thread * count + n) % 255);
            buffers[slot].asSlice(0, length).fill(value);
            final IoCompletion done = (cookie, result) ->
            {
                completions.add(new long[] {offset, length, value});
                synchronized (monitor)
                {
                    results[0] = result < 0 ? result : results[0];
                    busy[slot] = false;
                    monitor.notifyAll();
                }
            };
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!(zeroes ? device.writeZeroes(offset, length, 0, done, n) :
                device.write(offset, buffers[slot], length, 0, done, n)))
            {
                assertTrue(System.nanoTime() < deadline, "back-pressure for 20 s");
                Thread.onSpinWait();
            }
        }
        synchronized (monitor)
        {
            for (int i = 0; i < depth; i++)
            {
                while (busy[i])
                {
                    monitor.wait(TimeUnit.SECONDS.toMillis(20));
                }
            }
            assertEquals(0, results[0], "a request failed");
        }
    }

    private static int takeSlot(final Object monitor, final boolean[] busy) throws InterruptedException
    {
        synchronized (monitor)
        {
            while (true)
            {
                for (int i = 0; i < busy.length; i++)
                {
                    if (!busy[i])
                    {
                        busy[i] = true;
                        return i;
                    }
                }
                monitor.wait(TimeUnit.SECONDS.toMillis(20));
            }
        }
    }
}
