package io.understudy.cli;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A daemon's last flush of its own disk, after the exports closed. The exports flush through the replication
 * layer, which refuses I/O once replication stopped (ESHUTDOWN); the disk itself must still reach stable
 * storage before the daemon says it stopped cleanly.
 */
final class Flush
{
    private Flush()
    {
    }

    /** @return 0, or a negated errno (ETIMEDOUT at the deadline). */
    static int flush(final BlockDevice device, final long timeoutMillis) throws InterruptedException
    {
        final CountDownLatch done = new CountDownLatch(1);
        final AtomicInteger result = new AtomicInteger();
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (!device.flush((cookie, rc) ->
        {
            result.set(rc);
            done.countDown();
        }, 0))
        {
            if (System.nanoTime() - deadline >= 0)
            {
                return -Errno.ETIMEDOUT;
            }
            Thread.sleep(1);
        }
        return done.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS) ? result.get() :
            -Errno.ETIMEDOUT;
    }

    /** Flushes and says so; a failure is reported and turned into a non-zero exit. */
    static void finalFlush(final BlockDevice device, final String name, final long timeoutMillis)
        throws InterruptedException
    {
        final int result = flush(device, timeoutMillis);
        if (result < 0)
        {
            throw new UserException("final flush of " + name + " failed: " + Errno.name(result) +
                "; acknowledged writes may not be on stable storage");
        }
    }
}
