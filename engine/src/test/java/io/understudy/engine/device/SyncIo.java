package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** Test helper: runs one asynchronous request and waits (bounded) for its result. */
public final class SyncIo
{
    private static final long TIMEOUT_SECONDS = 20;

    /** A submission: returns the device's accept flag. */
    @FunctionalInterface
    public interface Submission
    {
        boolean submit(IoCompletion completion, long cookie);
    }

    private SyncIo()
    {
    }

    /** Submits (retrying on back-pressure) and waits; fails the test after a timeout. */
    public static int run(final Submission submission)
    {
        final CountDownLatch done = new CountDownLatch(1);
        final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
        final AtomicInteger calls = new AtomicInteger();
        final IoCompletion completion = (cookie, r) ->
        {
            calls.incrementAndGet();
            result.set(r);
            done.countDown();
        };
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
        while (!submission.submit(completion, 42))
        {
            if (System.nanoTime() > deadline)
            {
                throw new AssertionError("request refused (back-pressure) for " + TIMEOUT_SECONDS + " s");
            }
            Thread.yield();
        }
        try
        {
            if (!done.await(TIMEOUT_SECONDS, TimeUnit.SECONDS))
            {
                throw new AssertionError("request did not complete within " + TIMEOUT_SECONDS + " s");
            }
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
        if (calls.get() != 1)
        {
            throw new AssertionError("completion called " + calls.get() + " times");
        }
        return result.get();
    }

    public static int write(final BlockDevice device, final long offset, final MemorySegment buffer, final byte[] data)
    {
        MemorySegment.copy(data, 0, buffer, ValueLayout.JAVA_BYTE, 0, data.length);
        return run((c, k) -> device.write(offset, buffer, data.length, 0, c, k));
    }

    /** Reads into {@code buffer} and returns the bytes; fails the test if the read fails. */
    public static byte[] read(final BlockDevice device, final long offset, final MemorySegment buffer, final int length)
    {
        final int rc = run((c, k) -> device.read(offset, buffer, length, c, k));
        if (rc != length)
        {
            throw new AssertionError("read of " + length + " at " + offset + " returned " + rc + " (" +
                Errno.name(rc) + ")");
        }
        return buffer.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
    }
}
