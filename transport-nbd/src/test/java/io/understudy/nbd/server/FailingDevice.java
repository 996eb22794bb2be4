package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;

/** Delegates to a real device but fails every request touching [failFrom, failTo) with EIO, like a bad sector. */
final class FailingDevice implements BlockDevice
{
    private final BlockDevice delegate;
    private final long failFrom;
    private final long failTo;

    FailingDevice(final BlockDevice delegate, final long failFrom, final long failTo)
    {
        this.delegate = delegate;
        this.failFrom = failFrom;
        this.failTo = failTo;
    }

    private boolean bad(final long offset, final long length)
    {
        return offset < failTo && offset + length > failFrom;
    }

    @Override
    public long size()
    {
        return delegate.size();
    }

    @Override
    public int alignment()
    {
        return delegate.alignment();
    }

    @Override
    public boolean isReadOnly()
    {
        return delegate.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        return delegate.canDiscard();
    }

    @Override
    public boolean canFastZero()
    {
        return delegate.canFastZero();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        if (bad(offset, length))
        {
            completion.onComplete(cookie, -Errno.EIO);
            return true;
        }
        return delegate.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        if (bad(offset, length))
        {
            completion.onComplete(cookie, -Errno.EDQUOT);
            return true;
        }
        return delegate.write(offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return delegate.flush(completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return delegate.discard(offset, length, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return delegate.writeZeroes(offset, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return bad(offset, length) ? -Errno.EIO : delegate.blockStatus(offset, length, sink);
    }

    @Override
    public void close()
    {
        delegate.close();
    }
}
