package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ForwardingBlockDevice;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The demo's primary crash: a decorator on every device the primary sends requests to (its disk and its link
 * to the secondary) whose power can be cut. From {@link #cut} on, no request reaches the device below any more,
 * as if the process had died; each completes at once with EIO instead, so the primary's objects can still be
 * torn down in the same JVM. Requests that reached the device before the cut finish there, as a crashed
 * process's writes already in the kernel do; closing the device below waits for them, which fences the dead
 * primary: afterwards nothing it started can still change a disk.
 * <p>
 * {@link #cut} returns only once no submission is between its check of the switch and the device below, so a
 * caller may close the device right afterwards without a late request reaching a closed device.
 */
final class PowerCut extends ForwardingBlockDevice
{
    private final AtomicInteger submitting = new AtomicInteger();
    private volatile boolean cut;

    PowerCut(final BlockDevice device)
    {
        super(device);
    }

    /** Cuts the power: every later request fails with EIO without reaching the device below. */
    void cut()
    {
        // Dekker pattern with enter(): volatile write of the switch, then volatile reads of the counter; a
        // submitter increments the counter before it reads the switch, so one of the two sees the other.
        cut = true;
        while (submitting.get() != 0)
        {
            LockSupport.parkNanos(1000);
        }
    }

    boolean isCut()
    {
        return cut;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion,
        final long cookie)
    {
        if (!enter())
        {
            return dead(completion, cookie);
        }
        try
        {
            return device.read(offset, buffer, length, completion, cookie);
        }
        finally
        {
            submitting.decrementAndGet();
        }
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        if (!enter())
        {
            return dead(completion, cookie);
        }
        try
        {
            return device.write(offset, buffer, length, flags, completion, cookie);
        }
        finally
        {
            submitting.decrementAndGet();
        }
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        if (!enter())
        {
            return dead(completion, cookie);
        }
        try
        {
            return device.flush(completion, cookie);
        }
        finally
        {
            submitting.decrementAndGet();
        }
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (!enter())
        {
            return dead(completion, cookie);
        }
        try
        {
            return device.discard(offset, length, completion, cookie);
        }
        finally
        {
            submitting.decrementAndGet();
        }
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        if (!enter())
        {
            return dead(completion, cookie);
        }
        try
        {
            return device.writeZeroes(offset, length, flags, completion, cookie);
        }
        finally
        {
            submitting.decrementAndGet();
        }
    }

    /** @return true if the request may pass (the counter stays incremented until the caller's finally). */
    private boolean enter()
    {
        submitting.incrementAndGet();
        if (cut)
        {
            submitting.decrementAndGet();
            return false;
        }
        return true;
    }

    private static boolean dead(final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, -Errno.EIO);
        return true;
    }
}
