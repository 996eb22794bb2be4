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
public final class DelayedReadDevice implements BlockDevice
{
    private final BlockDevice device;
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
        this.device = device;
        this.minDelayMicros = minDelayMicros;
        this.maxDelayMicros = maxDelayMicros;
    }

    @Override
    public long size()
    {
        return device.size();
    }

    @Override
    public int alignment()
    {
        return device.alignment();
    }

    @Override
    public boolean isReadOnly()
    {
        return device.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        return device.canDiscard();
    }

    @Override
    public boolean canFastZero()
    {
        return device.canFastZero();
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

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return device.write(offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return device.flush(completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return device.discard(offset, length, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return device.writeZeroes(offset, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return device.blockStatus(offset, length, sink);
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
