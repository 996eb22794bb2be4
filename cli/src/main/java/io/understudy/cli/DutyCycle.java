package io.understudy.cli;

import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;

/**
 * Runs a replication disk's duty cycle (forwarding deadlines, COW retries) on one thread. Idle backs off to
 * 1 ms parks: the deadlines it enforces are tens of milliseconds or more, and the machine is shared.
 */
final class DutyCycle implements AutoCloseable
{
    private final Thread thread;
    private volatile boolean running = true;

    DutyCycle(final String name, final IntSupplier work)
    {
        final IdleStrategy idle = new BackoffIdleStrategy(10, 10, TimeUnit.MICROSECONDS.toNanos(10),
            TimeUnit.MILLISECONDS.toNanos(1));
        thread = Thread.ofPlatform().daemon(true).name(name).start(() ->
        {
            while (running)
            {
                idle.idle(work.getAsInt());
            }
        });
    }

    @Override
    public void close()
    {
        running = false;
        try
        {
            thread.join(5000);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }
}
