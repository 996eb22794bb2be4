package io.understudy.engine.io.threads;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.posix.LibC;
import io.understudy.engine.io.posix.Op;
import io.understudy.engine.io.posix.PosixFile;
import io.understudy.engine.io.IndexStack;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A file served by {@link ThreadPoolIoEngine}: a fixed set of request slots (the queue depth), each
 * reused for one request at a time, so that submitting allocates nothing.
 */
final class ThreadPoolFileDevice implements BlockDevice
{
    private static final long CLOSE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(100);

    private final ThreadPoolIoEngine engine;
    private final PosixFile file;
    private final Request[] requests;
    /** Free request slots: a stack, so a preempted releaser never makes a submitter see a false "full". */
    private final IndexStack freeRequests;
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Errno capture for inline execution and block-status queries, per calling thread. */
    private final ThreadLocal<LibC.ErrnoState> callerErrno;
    private final Arena arena = Arena.ofShared();

    ThreadPoolFileDevice(final ThreadPoolIoEngine engine, final PosixFile file, final int queueDepth)
    {
        this.engine = engine;
        this.file = file;
        this.requests = new Request[queueDepth];
        for (int i = 0; i < queueDepth; i++)
        {
            requests[i] = new Request(i);
        }
        this.freeRequests = new IndexStack(queueDepth);
        // Thread-local errno states live in this device's shared arena, freed on close.
        this.callerErrno = ThreadLocal.withInitial(() -> new LibC.ErrnoState(arena));
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
        // Counted before the closed check: close() marks the file closed, then waits for this count, so
        // a request either sees "closed" or is waited for (both sides use volatile accesses).
        inFlight.incrementAndGet();
        int invalid = file.validate(op, offset, length, flags);
        if (invalid == 0 && (op == Op.READ || op == Op.WRITE) && buffer.byteSize() < length)
        {
            invalid = -Errno.EINVAL;
        }
        if (invalid < 0)
        {
            try
            {
                completion.onComplete(cookie, invalid);
            }
            finally
            {
                inFlight.decrementAndGet();
            }
            return true;
        }
        final int slot = freeRequests.pop();
        if (slot == IndexStack.EMPTY)
        {
            inFlight.decrementAndGet();
            return false;
        }
        final Request request = requests[slot];
        request.set(op, offset, buffer, length, flags, completion, cookie);
        if (engine.isInline())
        {
            request.execute(callerErrno.get());
            return true;
        }
        if (!engine.dispatch(request))
        {
            request.clear();
            freeRequests.push(slot);
            inFlight.decrementAndGet();
            return false;
        }
        return true;
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

    /** One reusable request slot. Fields are written by the submitter and published by the queue hand-over. */
    final class Request
    {
        private final int index;
        private int op;
        private long offset;
        private MemorySegment buffer;
        private long length;
        private int flags;
        private IoCompletion completion;
        private long cookie;

        Request(final int index)
        {
            this.index = index;
        }

        void set(
            final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
            final IoCompletion completion, final long cookie)
        {
            this.op = op;
            this.offset = offset;
            this.buffer = buffer;
            this.length = length;
            this.flags = flags;
            this.completion = completion;
            this.cookie = cookie;
        }

        void clear()
        {
            buffer = null;
            completion = null;
        }

        void execute(final LibC.ErrnoState errno)
        {
            final int result = switch (op)
            {
                case Op.READ -> file.read(errno, offset, buffer, (int)length);
                case Op.WRITE -> file.write(errno, offset, buffer, (int)length, flags);
                case Op.FLUSH -> file.flush(errno);
                case Op.DISCARD -> file.discard(errno, offset, length);
                case Op.WRITE_ZEROES -> file.writeZeroes(errno, offset, length, flags);
                default -> -Errno.EINVAL;
            };
            complete(result);
        }

        void abort()
        {
            complete(-Errno.ESHUTDOWN);
        }

        private void complete(final int result)
        {
            final IoCompletion completion = this.completion;
            final long cookie = this.cookie;
            clear();
            // Recycle the slot before the callback so that a completion handler can resubmit at once.
            freeRequests.push(index);
            try
            {
                completion.onComplete(cookie, result);
            }
            finally
            {
                inFlight.decrementAndGet();
            }
        }
    }
}
