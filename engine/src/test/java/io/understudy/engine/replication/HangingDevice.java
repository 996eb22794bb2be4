package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ForwardingBlockDevice;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Test decorator for a hung peer or disk: while hanging, write-type requests (write, write-zeroes, discard,
 * flush) are accepted and never reach the device nor complete, like a SIGSTOPped NBD server. {@link #release}
 * completes the held ones with ESHUTDOWN (a dropped connection). Reads always pass.
 */
final class HangingDevice extends ForwardingBlockDevice
{
    private record Held(IoCompletion completion, long cookie)
    {
    }

    private final List<Held> held = new ArrayList<>();
    private volatile boolean hanging;
    private volatile boolean refusing;

    HangingDevice(final BlockDevice device)
    {
        super(device);
    }

    void hang(final boolean hang)
    {
        hanging = hang;
    }

    /** While refusing, write-type requests see back-pressure ({@code false}) forever. */
    void refuse(final boolean refuse)
    {
        refusing = refuse;
    }

    synchronized int heldCount()
    {
        return held.size();
    }

    /** Completes every held request with ESHUTDOWN. */
    void release()
    {
        final List<Held> copy;
        synchronized (this)
        {
            copy = new ArrayList<>(held);
            held.clear();
        }
        for (final Held request : copy)
        {
            request.completion().onComplete(request.cookie(), -Errno.ESHUTDOWN);
        }
    }

    private synchronized boolean hold(final IoCompletion completion, final long cookie)
    {
        if (refusing)
        {
            return false;
        }
        held.add(new Held(completion, cookie));
        return true;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return hanging || refusing ?
            hold(completion, cookie) :
            device.write(offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return hanging || refusing ?
            hold(completion, cookie) :
            device.flush(completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return hanging || refusing ?
            hold(completion, cookie) :
            device.discard(offset, length, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return hanging || refusing ?
            hold(completion, cookie) :
            device.writeZeroes(offset, length, flags, completion, cookie);
    }

    @Override
    public void close()
    {
        release();
        super.close();
    }
}
