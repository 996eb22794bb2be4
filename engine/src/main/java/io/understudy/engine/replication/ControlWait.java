package io.understudy.engine.replication;

import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Runs one asynchronous request for a control operation (make-empty, flush at a checkpoint) and waits for it
 * on the calling control thread, never beyond a deadline. Control operations are rare; one object per wait.
 */
final class ControlWait implements IoCompletion
{
    /** A submission: returns the device's accept flag. */
    @FunctionalInterface
    interface Submission
    {
        boolean submit(IoCompletion completion, long cookie);
    }

    private static final long RETRY_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    private final CountDownLatch done = new CountDownLatch(1);
    private volatile int result;

    private ControlWait()
    {
    }

    /**
     * @return the request's result, or -ETIMEDOUT if it was not accepted or did not complete before
     * {@code deadlineNanos} ({@link System#nanoTime()} based).
     */
    static int run(final Submission submission, final long deadlineNanos)
    {
        final ControlWait wait = new ControlWait();
        while (!submission.submit(wait, 0))
        {
            if (System.nanoTime() - deadlineNanos >= 0)
            {
                return -Errno.ETIMEDOUT;
            }
            LockSupport.parkNanos(RETRY_NANOS);
        }
        try
        {
            final long remaining = deadlineNanos - System.nanoTime();
            return wait.done.await(Math.max(0, remaining), TimeUnit.NANOSECONDS) ? wait.result : -Errno.ETIMEDOUT;
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            return -Errno.ETIMEDOUT;
        }
    }

    @Override
    public void onComplete(final long cookie, final int result)
    {
        // Volatile write before the count-down: the waiter reads it after await returns.
        this.result = result;
        done.countDown();
    }
}
