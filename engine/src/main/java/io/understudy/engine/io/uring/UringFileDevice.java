package io.understudy.engine.io.uring;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.posix.LibC;
import io.understudy.engine.io.posix.Op;
import io.understudy.engine.io.posix.PosixFile;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A file served by {@link UringIoEngine}: validates and queues requests for the engine's ring agent,
 * limiting this device to its queue depth. Submitting allocates nothing: the request slot is preallocated
 * by the agent and the buffer is the caller's.
 */
final class UringFileDevice implements BlockDevice
{
    private static final long CLOSE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(100);

    private final UringIoEngine engine;
    private final RingAgent agent;
    private final PosixFile file;
    private final int queueDepth;
    /** Requests accepted and not yet completed (completion callback returned); close() waits for 0. */
    private final AtomicInteger inFlight = new AtomicInteger();
    /**
     * Queue-depth slots taken: like the thread backend, a request gives its slot back just before its
     * completion callback runs, so that the callback can submit the next request at once.
     */
    private final AtomicInteger slots = new AtomicInteger();
    private final Arena arena = Arena.ofShared();
    /** Errno capture for block-status queries, per calling thread. */
    private final ThreadLocal<LibC.ErrnoState> callerErrno;
    private volatile boolean closing;

    UringFileDevice(final UringIoEngine engine, final RingAgent agent, final PosixFile file, final int queueDepth)
    {
        this.engine = engine;
        this.agent = agent;
        this.file = file;
        this.queueDepth = queueDepth;
        this.callerErrno = ThreadLocal.withInitial(() -> new LibC.ErrnoState(arena));
    }

    int fd()
    {
        return file.fd();
    }

    boolean isClosing()
    {
        return closing;
    }

    /** Called by the agent just before a request's completion callback. */
    void releaseSlot()
    {
        slots.decrementAndGet();
    }

    /** Called by the agent after a request's completion callback returned. */
    void onCompleted()
    {
        inFlight.decrementAndGet();
    }

    @Override
    public long size()
    {
        return file.size();
    }

    @Override
    public int alignment()
    {
        return file.alignment();
    }

    @Override
    public boolean isReadOnly()
    {
        return file.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        return true;
    }

    @Override
    public boolean canFastZero()
    {
        return file.canFastZero();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return submit(Op.READ, offset, buffer, length, 0, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return submit(Op.WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return submit(Op.FLUSH, 0, null, 0, 0, completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return submit(Op.DISCARD, offset, null, length, 0, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return submit(Op.WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return file.blockStatus(callerErrno.get(), offset, length, sink);
    }

    private boolean submit(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        // Counted before the closed check (inside validate): close() marks the file closed, then waits for
        // this count, so a request either sees "closed" or is waited for (volatile accesses on both sides).
        inFlight.incrementAndGet();
        int invalid = file.validate(op, offset, length, flags);
        if (invalid == 0 && (op == Op.READ || op == Op.WRITE) && (!buffer.isNative() || buffer.byteSize() < length))
        {
            invalid = -Errno.EINVAL; // the kernel needs a native buffer covering the whole transfer
        }
        if (invalid < 0)
        {
            fail(completion, cookie, invalid);
            return true;
        }
        if (slots.incrementAndGet() > queueDepth)
        {
            slots.decrementAndGet();
            inFlight.decrementAndGet();
            return false;
        }
        if (!agent.enterSubmit())
        {
            agent.exitSubmit();
            slots.decrementAndGet();
            fail(completion, cookie, -Errno.ESHUTDOWN);
            return true;
        }
        final UringRequest request = agent.acquire();
        if (request == null)
        {
            agent.exitSubmit();
            slots.decrementAndGet();
            inFlight.decrementAndGet();
            return false;
        }
        final short fixed = op == Op.READ || op == Op.WRITE ?
            engine.fixedBufferIndex(buffer.address(), length) : UringRequest.NOT_FIXED;
        request.set(this, op, offset, buffer, length, flags, fixed, completion, cookie);
        agent.submit(request);
        agent.exitSubmit();
        return true;
    }

    private void fail(final IoCompletion completion, final long cookie, final int result)
    {
        try
        {
            completion.onComplete(cookie, result);
        }
        finally
        {
            inFlight.decrementAndGet();
        }
    }

    /**
     * Refuses new requests, completes queued ones with ESHUTDOWN and waits for those in the kernel, then
     * closes the file. Must not be called from a completion callback (the agent would wait for itself).
     */
    @Override
    public void close()
    {
        if (engine.isAgentThread())
        {
            throw new IllegalStateException("close a device from outside its completion callbacks");
        }
        closing = true;
        if (!file.markClosed())
        {
            return;
        }
        while (inFlight.get() > 0)
        {
            LockSupport.parkNanos(CLOSE_POLL_NANOS);
        }
        file.close();
        arena.close();
    }
}
