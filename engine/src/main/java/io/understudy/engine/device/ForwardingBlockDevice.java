package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;

/**
 * A decorator base that forwards every {@link BlockDevice} call unchanged to the device it wraps, including
 * {@link #close()}; a decorator overrides only the calls it changes. Forwarding adds no state and no
 * allocation: requests, buffers, completions and cookies reach the wrapped device as given.
 */
public abstract class ForwardingBlockDevice implements BlockDevice
{
    /** The wrapped device. */
    protected final BlockDevice device;

    protected ForwardingBlockDevice(final BlockDevice device)
    {
        this.device = device;
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
        return device.read(offset, buffer, length, completion, cookie);
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

    @Override
    public void close()
    {
        device.close();
    }
}
