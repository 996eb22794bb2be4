package io.understudy.engine.io.uring;

import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.posix.FileDevice;
import io.understudy.engine.io.posix.Op;
import io.understudy.engine.io.posix.PosixFile;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A file served by {@link UringIoEngine}: validates and queues requests for the engine's ring agent,
 * limiting this device to its queue depth. Submitting allocates nothing: the request slot is preallocated
 * by the agent and the buffer is the caller's.
 */
final class UringFileDevice extends FileDevice
{
    private final UringIoEngine engine;
    private final RingAgent agent;
    private final int queueDepth;
    /**
     * Queue-depth slots taken: like the thread backend, a request gives its slot back just before its
     * completion callback runs, so that the callback can submit the next request at once.
     */
    private final AtomicInteger slots = new AtomicInteger();
    private volatile boolean closing;

    UringFileDevice(final UringIoEngine engine, final RingAgent agent, final PosixFile file, final int queueDepth)
    {
        super(file);
        this.engine = engine;
        this.agent = agent;
        this.queueDepth = queueDepth;
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
        requestDone();
    }

    /** The kernel needs a native buffer covering the whole transfer. */
    @Override
    protected boolean isUsable(final MemorySegment buffer, final long length)
    {
        return buffer.isNative() && buffer.byteSize() >= length;
    }

    /** io_uring has no copy_file_range operation, so this device offers no copies: {@code source} is always null. */
    @Override
    protected boolean enqueue(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final FileDevice source, final IoCompletion completion, final long cookie)
    {
        if (slots.incrementAndGet() > queueDepth)
        {
            slots.decrementAndGet();
            return false;
        }
        if (!agent.enterSubmit())
        {
            agent.exitSubmit();
            slots.decrementAndGet();
            fail(completion, cookie, agent.refusal());
            return true;
        }
        final UringRequest request = agent.acquire();
        if (request == null)
        {
            agent.exitSubmit();
            slots.decrementAndGet();
            return false;
        }
        final short fixed = op == Op.READ || op == Op.WRITE ?
            engine.fixedBufferIndex(buffer.address(), length) : UringRequest.NOT_FIXED;
        request.set(this, op, offset, buffer, length, flags, fixed, completion, cookie);
        agent.submit(request);
        agent.exitSubmit();
        return true;
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
        super.close();
    }
}
