package io.understudy.engine.io.posix;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * What every I/O backend's file device shares: properties and block status answered by the
 * {@link PosixFile}, request validation (range, flags, buffer, closed), the in-flight count that
 * {@link #close()} waits for, and the per-thread errno capture. A backend supplies only how a valid request
 * reaches the kernel ({@link #enqueue}) and calls {@link #requestDone()} after each completion callback.
 * <p>
 * <b>Closing.</b> A request is counted before the file's closed flag is read (inside
 * {@link PosixFile#validate}); {@link #close()} marks the file closed, then waits for the count to drain.
 * Both sides use volatile accesses, so each request either sees "closed" or is waited for.
 */
public abstract class FileDevice implements BlockDevice
{
    private static final long CLOSE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(100);

    protected final PosixFile file;
    /** Requests accepted and not yet completed (completion callback returned); close() waits for 0. */
    private final AtomicInteger inFlight = new AtomicInteger();
    private final Arena arena = Arena.ofShared();
    /** Errno capture per calling thread, in this device's shared arena (freed on close). */
    private final ThreadLocal<LibC.ErrnoState> callerErrno;

    protected FileDevice(final PosixFile file)
    {
        this.file = file;
        this.callerErrno = ThreadLocal.withInitial(() -> new LibC.ErrnoState(arena));
    }

    @Override
    public final long size()
    {
        return file.size();
    }

    @Override
    public final int alignment()
    {
        return file.alignment();
    }

    @Override
    public final boolean isReadOnly()
    {
        return file.isReadOnly();
    }

    @Override
    public final boolean canDiscard()
    {
        return true;
    }

    @Override
    public final boolean canFastZero()
    {
        return file.canFastZero();
    }

    @Override
    public final boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return submit(Op.READ, offset, buffer, length, 0, completion, cookie);
    }

    @Override
    public final boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return submit(Op.WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public final boolean flush(final IoCompletion completion, final long cookie)
    {
        return submit(Op.FLUSH, 0, null, 0, 0, completion, cookie);
    }

    @Override
    public final boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return submit(Op.DISCARD, offset, null, length, 0, completion, cookie);
    }

    @Override
    public final boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return submit(Op.WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    @Override
    public final long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return file.blockStatus(callerErrno.get(), offset, length, sink);
    }

    /** Waits for in-flight requests (each completes exactly once), then closes the file. */
    @Override
    public void close()
    {
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

    /** @return the calling thread's errno capture, for syscalls made on it. */
    protected final LibC.ErrnoState callerErrno()
    {
        return callerErrno.get();
    }

    /** @return true if the backend can transfer into or out of {@code buffer}, which covers the length. */
    protected boolean isUsable(final MemorySegment buffer, final long length)
    {
        return buffer.byteSize() >= length;
    }

    /**
     * Validates and hands to the backend a copy from {@code source} ({@link Op#COPY}), for a backend that offers
     * {@link io.understudy.engine.device.CopyOffload}. The source range is checked as a read of the source. The copy
     * is counted in flight on the source as well, so the source's descriptor stays open until {@link #copyDone} (its
     * {@link #close()} waits for it).
     */
    protected final boolean submitCopy(
        final FileDevice source, final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        source.inFlight.incrementAndGet();
        final int invalid = source.file.validate(Op.READ, offset, length, 0);
        if (invalid < 0)
        {
            source.inFlight.decrementAndGet();
            completion.onComplete(cookie, invalid);
            return true;
        }
        if (!submit(Op.COPY, offset, null, length, 0, source, completion, cookie))
        {
            source.inFlight.decrementAndGet();
            return false;
        }
        return true;
    }

    /** Called after a copy's completion callback returned, with {@link #requestDone()}: releases the source. */
    protected static void copyDone(final FileDevice source)
    {
        source.inFlight.decrementAndGet();
    }

    /** @return the file a copy reads from. */
    protected static PosixFile fileOf(final FileDevice source)
    {
        return source.file;
    }

    /**
     * Hands a valid request to the backend; it has been counted in flight.
     *
     * @param source the file a {@link Op#COPY} reads from ({@link #submitCopy}); null for every other request.
     * @return false on back-pressure (nothing happens, the count is undone here); true once the request will
     * complete, or has completed (through {@link #fail} or a callback followed by {@link #requestDone()}).
     */
    protected abstract boolean enqueue(
        int op, long offset, MemorySegment buffer, long length, int flags, FileDevice source, IoCompletion completion,
        long cookie);

    /** Completes a counted request with {@code result} on the calling thread. */
    protected final void fail(final IoCompletion completion, final long cookie, final int result)
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

    /** Called after a request's completion callback returned: it no longer holds close() back. */
    protected final void requestDone()
    {
        inFlight.decrementAndGet();
    }

    private boolean submit(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        return submit(op, offset, buffer, length, flags, null, completion, cookie);
    }

    private boolean submit(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final FileDevice source, final IoCompletion completion, final long cookie)
    {
        // Counted before the closed check inside validate (see the class comment).
        inFlight.incrementAndGet();
        int invalid = file.validate(op, offset, length, flags);
        if (invalid == 0 && (op == Op.READ || op == Op.WRITE) && !isUsable(buffer, length))
        {
            invalid = -Errno.EINVAL;
        }
        if (invalid < 0)
        {
            fail(completion, cookie, invalid);
            if (source != null)
            {
                copyDone(source);
            }
            return true;
        }
        if (!enqueue(op, offset, buffer, length, flags, source, completion, cookie))
        {
            inFlight.decrementAndGet();
            return false;
        }
        return true;
    }
}
