package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ForwardingBlockDevice;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
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
 * {@link #hold} lets the demo crash with writes in flight for certain, however the host schedules its threads:
 * from then on requests are accepted but kept back, as if on their way down when the power went, and
 * {@link #cut} fails them with EIO. A guest write whose request is kept back cannot complete before the cut.
 * <p>
 * {@link #cut} returns only once no submission is between its check of the switch and the device below, so a
 * caller may close the device right afterwards without a late request reaching a closed device.
 */
final class PowerCut extends ForwardingBlockDevice
{
    private static final int LIVE = 0;
    private static final int HOLDING = 1;
    private static final int CUT = 2;

    private final AtomicInteger submitting = new AtomicInteger();
    /** Requests kept back since {@link #hold}; guarded by itself, only ever touched around the crash. */
    private final List<Held> held = new ArrayList<>();
    private volatile int state = LIVE;

    PowerCut(final BlockDevice device)
    {
        super(device);
    }

    /** From now on requests are accepted but kept back until {@link #cut} fails them. */
    void hold()
    {
        state = HOLDING;
    }

    /** @return requests kept back since {@link #hold}: each is still in flight for whoever submitted it. */
    int heldRequests()
    {
        synchronized (held)
        {
            return held.size();
        }
    }

    /** Cuts the power: the requests kept back, and every later one, fail with EIO without reaching the device. */
    void cut()
    {
        // Dekker pattern with enter(): volatile write of the switch, then volatile reads of the counter; a
        // submitter increments the counter before it reads the switch, so one of the two sees the other. Once
        // the counter reads 0, nobody can still be adding to the held requests.
        state = CUT;
        while (submitting.get() != 0)
        {
            LockSupport.parkNanos(1000);
        }
        final Held[] failing;
        synchronized (held)
        {
            failing = held.toArray(new Held[0]);
            held.clear();
        }
        for (final Held request : failing)
        {
            request.completion.onComplete(request.cookie, -Errno.EIO);
        }
    }

    boolean isCut()
    {
        return state == CUT;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion,
        final long cookie)
    {
        final int seen = enter();
        try
        {
            if (seen != LIVE)
            {
                return stopped(seen, completion, cookie);
            }
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
        final int seen = enter();
        try
        {
            if (seen != LIVE)
            {
                return stopped(seen, completion, cookie);
            }
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
        final int seen = enter();
        try
        {
            if (seen != LIVE)
            {
                return stopped(seen, completion, cookie);
            }
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
        final int seen = enter();
        try
        {
            if (seen != LIVE)
            {
                return stopped(seen, completion, cookie);
            }
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
        final int seen = enter();
        try
        {
            if (seen != LIVE)
            {
                return stopped(seen, completion, cookie);
            }
            return device.writeZeroes(offset, length, flags, completion, cookie);
        }
        finally
        {
            submitting.decrementAndGet();
        }
    }

    /** @return the state the request found; the counter stays incremented until the caller's finally. */
    private int enter()
    {
        submitting.incrementAndGet();
        return state;
    }

    /** A request that may not pass: kept back while holding (the cut fails it), failed at once after the cut. */
    private boolean stopped(final int seen, final IoCompletion completion, final long cookie)
    {
        if (seen == HOLDING)
        {
            synchronized (held)
            {
                held.add(new Held(completion, cookie));
            }
        }
        else
        {
            completion.onComplete(cookie, -Errno.EIO);
        }
        return true;
    }

    private record Held(IoCompletion completion, long cookie)
    {
    }
}
