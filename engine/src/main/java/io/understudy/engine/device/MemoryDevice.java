package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;

/**
 * A disk in caller-owned memory that completes every request at once, on the caller's thread: the sink of
 * benchmarks and tests that measure or check what sits in front of a device (a transport, a replication
 * pipeline) without a file's cost. Discard keeps the bytes; block status reports all data.
 */
public final class MemoryDevice implements BlockDevice
{
    private final MemorySegment disk;

    /** @param disk the disk's bytes; not owned (its arena frees it). */
    public MemoryDevice(final MemorySegment disk)
    {
        this.disk = disk;
    }

    @Override
    public long size()
    {
        return disk.byteSize();
    }

    @Override
    public int alignment()
    {
        return 1;
    }

    @Override
    public boolean isReadOnly()
    {
        return false;
    }

    @Override
    public boolean canDiscard()
    {
        return false;
    }

    @Override
    public boolean canFastZero()
    {
        return false;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion,
        final long cookie)
    {
        MemorySegment.copy(disk, offset, buffer, 0, length);
        completion.onComplete(cookie, length);
        return true;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        MemorySegment.copy(buffer, 0, disk, offset, length);
        completion.onComplete(cookie, length);
        return true;
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, 0);
        return true;
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, 0);
        return true;
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        disk.asSlice(offset, length).fill((byte)0);
        completion.onComplete(cookie, 0);
        return true;
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        sink.onExtent(length, 0);
        return length;
    }

    @Override
    public void close()
    {
    }
}
