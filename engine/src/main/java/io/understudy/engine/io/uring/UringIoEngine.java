package io.understudy.engine.io.uring;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.BufferPool;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.posix.PosixFile;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.NoOpIdleStrategy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The io_uring backend: one ring per engine, owned by one {@link RingAgent} thread that serves every
 * device opened through the engine. Raw syscalls through FFM; no liburing, no JNI.
 * <p>
 * Optionally the slabs of some {@link BufferPool}s are registered as fixed buffers
 * ({@code IORING_REGISTER_BUFFERS}): reads and writes whose buffer lies inside a registered slab then use
 * READ_FIXED / WRITE_FIXED and skip the per-I/O page pinning. Registration pins memory, which is charged
 * against {@code RLIMIT_MEMLOCK} for unprivileged users; when the kernel refuses (ENOMEM, EPERM, ...), the
 * engine falls back to plain reads and writes and says so in {@link #fixedBufferStatus()}.
 * <p>
 * FUA writes carry {@code RWF_DSYNC} (one SQE, durable on completion like write + fdatasync); flush is
 * FSYNC with {@code IORING_FSYNC_DATASYNC}; discard and write-zeroes run PosixFile's fallback chain as
 * FALLOCATE steps on the ring (see {@link RingAgent}), so both backends answer alike.
 * <p>
 * With {@code FileOptions.direct} the file is opened with O_DIRECT; this is where io_uring pays off
 * (measured about 4x the IOPS of queue depth 1 at depth 32 from one thread). Page-cache and tmpfs I/O gain
 * nothing from it on a small machine, see {@code IoEngines}.
 */
public final class UringIoEngine implements IoEngine
{
    static final System.Logger LOG = System.getLogger("io.understudy.engine.io.uring");

    /** SQ entries; the CQ gets twice as many, and the engine that many request slots minus one. */
    public static final int DEFAULT_RING_ENTRIES = 256;

    private final RingAgent agent;
    private final AgentRunner runner;
    private final Thread agentThread;
    private final long[] fixedStart;
    private final long[] fixedEnd;
    private final String fixedBufferStatus;
    private final AtomicLong agentErrors = new AtomicLong();
    private boolean closed;

    public UringIoEngine() throws IOException
    {
        this(DEFAULT_RING_ENTRIES);
    }

    /**
     * @param ringEntries  SQ size (power of two, at most 32768).
     * @param fixedBuffers pools whose slabs to register as fixed buffers 0..n-1 (may be none).
     * @throws IOException if io_uring cannot be set up here, with the reason.
     */
    public UringIoEngine(final int ringEntries, final BufferPool... fixedBuffers) throws IOException
    {
        final IoUring ring = new IoUring(ringEntries);
        final int eventFd;
        try (Arena scratch = Arena.ofConfined())
        {
            eventFd = UringSyscalls.eventfd(scratch.allocate(UringSyscalls.ERRNO_LAYOUT));
        }
        if (eventFd < 0)
        {
            ring.close();
            throw new IOException("eventfd failed: " + Errno.name(eventFd));
        }
        final MemorySegment[] slabs = new MemorySegment[fixedBuffers.length];
        for (int i = 0; i < slabs.length; i++)
        {
            slabs[i] = fixedBuffers[i].slab();
        }
        final int rc = slabs.length == 0 ? 0 : ring.registerBuffers(slabs);
        if (slabs.length == 0)
        {
            fixedBufferStatus = "no fixed buffers";
        }
        else if (rc < 0)
        {
            fixedBufferStatus = "fixed buffers refused (" + Errno.name(rc) +
                (rc == -Errno.ENOMEM ? ": RLIMIT_MEMLOCK too low" : "") + "), using plain READ/WRITE";
        }
        else
        {
            fixedBufferStatus = slabs.length + " fixed buffer slab(s) registered";
        }
        fixedStart = new long[rc < 0 ? 0 : slabs.length];
        fixedEnd = new long[fixedStart.length];
        for (int i = 0; i < fixedStart.length; i++)
        {
            fixedStart[i] = slabs[i].address();
            fixedEnd[i] = slabs[i].address() + slabs[i].byteSize();
        }
        agent = new RingAgent(ring, eventFd);
        runner = new AgentRunner(NoOpIdleStrategy.INSTANCE, this::onAgentError, null, agent);
        agentThread = AgentRunner.startOnThread(runner, r -> Thread.ofPlatform().daemon(true).unstarted(r));
    }

    private void onAgentError(final Throwable t)
    {
        // Only a broken ring gets here, once: the agent terminates (completions report their own errors).
        if (agentErrors.getAndIncrement() == 0)
        {
            LOG.log(System.Logger.Level.ERROR, "io_uring ring failed; its requests now fail with EIO: {0}",
                t.getMessage());
        }
    }

    /**
     * Sets up a small ring and runs one NOP through it: proves that this kernel, sysctl and seccomp policy
     * allow io_uring, without starting an engine.
     *
     * @throws IOException with the reason when io_uring is unusable.
     */
    public static void probe() throws IOException
    {
        try (IoUring ring = new IoUring(2))
        {
            ring.push(SubmissionQueueEntry.IORING_OP_NOP, -1, 0, 0, 0, 0, 42, (short)0);
            final int rc = ring.enter(true);
            if (rc < 0)
            {
                throw new IOException("io_uring_enter failed: " + Errno.name(rc));
            }
            final int[] seen = new int[2];
            ring.reap((userData, result) ->
            {
                seen[0] = (int)userData;
                seen[1] = result;
            }, 1);
            if (seen[0] != 42 || seen[1] != 0)
            {
                throw new IOException("io_uring NOP round trip returned user_data " + seen[0] + ", res " + seen[1]);
            }
        }
    }

    @Override
    public String name()
    {
        return "io_uring";
    }

    /** @return whether fixed buffers are in use, or why not. */
    public String fixedBufferStatus()
    {
        return fixedBufferStatus;
    }

    /** @return request slots shared by all devices (in flight at most, over the whole engine). */
    public int capacity()
    {
        return agent.capacity();
    }

    /** @return 0, or the negated errno with which the ring failed for good (every request then fails with EIO). */
    public int ringError()
    {
        return agent.ringError();
    }

    /** @return errors that reached the agent runner: at most one, the ring failing for good. */
    public long agentErrors()
    {
        return agentErrors.get();
    }

    /** @return completion callbacks that threw (each was counted and the ring went on). */
    public long callbackErrors()
    {
        return agent.callbackErrors();
    }

    @Override
    public BlockDevice open(final Path path, final FileOptions options) throws IOException
    {
        return new UringFileDevice(this, agent, PosixFile.open(path, options), options.queueDepth());
    }

    boolean isAgentThread()
    {
        return Thread.currentThread() == agentThread;
    }

    /** @return the fixed buffer holding {@code [address, address + length)}, or {@link UringRequest#NOT_FIXED}. */
    short fixedBufferIndex(final long address, final long length)
    {
        for (int i = 0; i < fixedStart.length; i++)
        {
            if (address >= fixedStart[i] && address + length <= fixedEnd[i])
            {
                return (short)i;
            }
        }
        return UringRequest.NOT_FIXED;
    }

    /**
     * Stops accepting requests, completes queued ones with ESHUTDOWN and waits for those in the kernel,
     * then unmaps the ring and closes its fd. Devices should be closed first; their files stay open.
     */
    @Override
    public synchronized void close()
    {
        if (isAgentThread())
        {
            throw new IllegalStateException("close the engine from outside its completion callbacks");
        }
        if (closed)
        {
            return;
        }
        closed = true;
        agent.shutdown();
        runner.close();
        agent.releaseBroken();
    }
}
