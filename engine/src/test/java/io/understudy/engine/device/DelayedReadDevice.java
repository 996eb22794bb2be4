package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * Test decorator: starts each read after a random delay (in {@code [minDelayMicros, maxDelayMicros]}) on a timer thread, as a
 * busy disk or a reordering queue would, which widens the window between a reader's decision and its access.
 * Everything else goes straight through.
 */
public final class DelayedReadDevice extends ForwardingBlockDevice
{
    private final int minDelayMicros;
    private final int maxDelayMicros;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r ->
    {
        final Thread thread = new Thread(r, "delayed-reads");
        thread.setDaemon(true);
        return thread;
    });

    public DelayedReadDevice(final BlockDevice device, final int maxDelayMicros)
    {
        this(device, 0, maxDelayMicros);
    }

    public DelayedReadDevice(final BlockDevice device, final int minDelayMicros, final int maxDelayMicros)
    {
        super(device);
        this.minDelayMicros = minDelayMicros;
        this.maxDelayMicros = maxDelayMicros;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        timer.schedule(() ->
        {
            while (!device.read(offset, buffer, length, completion, cookie))
            {
                Thread.yield();
            }
        }, ThreadLocalRandom.current().nextInt(minDelayMicros, maxDelayMicros + 1), TimeUnit.MICROSECONDS);
        return true;
    }

    /** Stops the timer (pending reads still run); does not close the device below. */
    @Override
    public void close()
    {
        timer.shutdown();
        try
        {
            timer.awaitTermination(5, TimeUnit.SECONDS);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }
}
