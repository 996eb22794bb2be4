package io.understudy.engine.io.threads;

import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.CopyOffload;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.posix.FileDevice;
import io.understudy.engine.io.posix.LibC;
import io.understudy.engine.io.posix.Op;
import io.understudy.engine.io.posix.PosixFile;

import java.lang.foreign.MemorySegment;

/**
 * A file served by {@link ThreadPoolIoEngine}: a fixed set of request slots (the queue depth), each
 * reused for one request at a time, so that submitting allocates nothing. It copies from other files in the kernel
 * ({@link CopyOffload}, copy_file_range(2)), which runs inline or on a worker like a write.
 */
final class ThreadPoolFileDevice extends FileDevice implements CopyOffload
{
    private final ThreadPoolIoEngine engine;
    private final Request[] requests;
    /** Free request slots: a stack, so a preempted releaser never makes a submitter see a false "full". */
    private final IndexStack freeRequests;

    ThreadPoolFileDevice(final ThreadPoolIoEngine engine, final PosixFile file, final int queueDepth)
    {
        super(file);
        this.engine = engine;
        this.requests = new Request[queueDepth];
        for (int i = 0; i < queueDepth; i++)
        {
            requests[i] = new Request(i);
        }
        this.freeRequests = new IndexStack(queueDepth);
    }

    /** Any file can be the source; whether the kernel copies between the two shows when it is tried. */
    @Override
    public boolean canCopyFrom(final BlockDevice source)
    {
        return source instanceof FileDevice;
    }

    @Override
    public boolean copyFrom(
        final BlockDevice source, final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (!(source instanceof FileDevice file))
        {
            completion.onComplete(cookie, -Errno.EOPNOTSUPP);
            return true;
        }
        return submitCopy(file, offset, length, completion, cookie);
    }

    @Override
    protected boolean enqueue(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final FileDevice source, final IoCompletion completion, final long cookie)
    {
        final int slot = freeRequests.pop();
        if (slot == IndexStack.EMPTY)
        {
            return false;
        }
        final Request request = requests[slot];
        request.set(op, offset, buffer, length, flags, source, completion, cookie);
        if (engine.runsInline(op, flags))
        {
            request.execute(callerErrno());
            return true;
        }
        if (!engine.dispatch(request))
        {
            request.clear();
            freeRequests.push(slot);
            return false;
        }
        return true;
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
        private FileDevice source;
        private IoCompletion completion;
        private long cookie;

        Request(final int index)
        {
            this.index = index;
        }

        void set(
            final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
            final FileDevice source, final IoCompletion completion, final long cookie)
        {
            this.op = op;
            this.offset = offset;
            this.buffer = buffer;
            this.length = length;
            this.flags = flags;
            this.source = source;
            this.completion = completion;
            this.cookie = cookie;
        }

        void clear()
        {
            buffer = null;
            source = null;
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
                case Op.COPY -> file.copyFrom(errno, fileOf(source), offset, length);
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
            final FileDevice source = this.source;
            clear();
            // Recycle the slot before the callback so that a completion handler can resubmit at once.
            freeRequests.push(index);
            try
            {
                completion.onComplete(cookie, result);
            }
            finally
            {
                if (source != null)
                {
                    copyDone(source);
                }
                requestDone();
            }
        }
    }
}
