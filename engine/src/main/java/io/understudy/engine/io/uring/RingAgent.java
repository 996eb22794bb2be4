package io.understudy.engine.io.uring;

import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.posix.LibC;
import io.understudy.engine.io.posix.Op;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentTerminationException;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The one thread that owns an {@link IoUring}: it turns queued requests into SQEs, submits them in
 * batches, reaps CQEs and calls completions.
 * <p>
 * <b>Duty cycle</b> ({@link #doWork()}): issue continuations and queued requests into SQEs while the SQ
 * has room (at most {@link #DRAIN_LIMIT} new requests), reap up to {@link #REAP_LIMIT} CQEs, then enter
 * the kernel once: to submit only, if it reaped something (more work may be waiting), or to submit and
 * sleep until the next CQE, if it did not. The agent therefore idles inside {@code io_uring_enter} and is
 * run with a no-op idle strategy.
 * <p>
 * <b>Wake-ups.</b> An eventfd read is kept armed on the ring (user_data {@link #WAKE}), so a sleeping agent
 * wakes either for an I/O completion or when a submitter signals the eventfd. The lost-wake-up race is
 * closed Dekker-style with sequentially consistent accesses on both sides:
 * <pre>
 *   submitter                                   agent
 *   offer(request)   (CAS of the queue tail)    sleeping = 1                      (volatile write)
 *   if sleeping == 1 (volatile read)            if queue empty (volatile read)
 *       and CAS(sleeping, 1, 0): signal              enter(submit, wait for 1 CQE)
 *                                               sleeping = 0
 * </pre>
 * Either the agent sees the request and does not sleep, or the submitter sees {@code sleeping} and
 * signals; the CAS lets only one of many concurrent submitters pay the write syscall. A signal that
 * arrives while the agent is awake costs one spurious wake-up, nothing else.
 * <p>
 * <b>Bounds.</b> There are {@code cq_entries - 1} request slots and each has at most one SQE outstanding,
 * plus the wake read: the CQ can never overflow. A full slot pool is back-pressure for submitters.
 * <p>
 * <b>Requests as state machines</b>, one SQE per step, mirroring {@code PosixFile}'s synchronous
 * semantics exactly so that both backends behave alike:
 * <ul>
 *   <li>READ / WRITE (READ_FIXED / WRITE_FIXED inside a registered slab): short transfers are continued; a
 *   read hitting end-of-file zero-fills the rest. FUA is {@code RWF_DSYNC} on the write itself: one SQE,
 *   the same guarantee as a write followed by fdatasync, and no ordering hazard between two SQEs.</li>
 *   <li>FLUSH: FSYNC with {@code IORING_FSYNC_DATASYNC}.</li>
 *   <li>DISCARD: FALLOCATE punch-hole; unsupported becomes a successful no-op.</li>
 *   <li>WRITE_ZEROES: punch-hole (unless NO_HOLE), else ZERO_RANGE, else (unless FAST_ZERO, which fails
 *   with ENOTSUP) written zeroes in 1 MiB chunks; then FSYNC if FUA.</li>
 * </ul>
 * <b>Shutdown</b> ({@link #onClose()}): requests queued but never submitted complete with ESHUTDOWN, those
 * in the kernel complete with their real result; only when every slot is back does the ring get unmapped
 * and its fd closed, so no buffer is released while the kernel may still use it.
 * <p>
 * <b>A broken ring.</b> If {@code io_uring_enter} fails with anything but a transient error (EINTR, EAGAIN,
 * EBUSY), the ring is unusable for good (EBADF: its fd was closed behind our back). The agent records the
 * error ({@link #ringError()}), stops accepting, and terminates with one {@link AgentTerminationException},
 * which the runner hands to the engine's error handler once and then stops the duty cycle. Its close then
 * fails every request with EIO: queued ones and future ones at once, those the kernel holds after reaping
 * whatever completes within {@link #BROKEN_REAP_NANOS} (no enter is possible any more). The ring's memory
 * and the eventfd are freed by {@link #releaseBroken()} once the engine is closed.
 */
final class RingAgent implements Agent, IoUring.CompletionHandler
{
    static final long WAKE = -1L;
    static final int DRAIN_LIMIT = 256;
    static final int REAP_LIMIT = 1024;
    /** How long a broken ring's close waits for requests the kernel holds to complete on their own. */
    static final long BROKEN_REAP_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

    private static final int STAGE_IO = 0;
    private static final int STAGE_PUNCH = 1;
    private static final int STAGE_ZERO_RANGE = 2;
    private static final int STAGE_WRITE_ZEROES = 3;
    private static final int STAGE_SYNC = 4;

    private static final int ZERO_CHUNK = 1 << 20;
    private static final MemorySegment ZEROES = Arena.global().allocate(ZERO_CHUNK, 4096);

    private final IoUring ring;
    private final UringRequest[] requests;
    /** Free slots: a stack, so a preempted releaser never makes a submitter see a false "full". */
    private final IndexStack freeRequests;
    private final ManyToOneConcurrentArrayQueue<UringRequest> submissions;
    /** Agent-only FIFO of requests waiting for SQ room for their next step. */
    private final UringRequest[] backlog;
    private int backlogHead;
    private int backlogSize;

    /** 1 while the agent is about to sleep or sleeping in the kernel; see the class comment. */
    private final AtomicInteger sleeping = new AtomicInteger();
    /** Submitters between their "accepting" check and their queue offer; see {@link #enterSubmit()}. */
    private final AtomicInteger activeSubmitters = new AtomicInteger();
    private volatile boolean accepting = true;
    /** 0, or the negated errno of the enter that broke the ring; written once by the agent (volatile). */
    private volatile int ringError;
    private final AtomicLong callbackErrors = new AtomicLong();

    private final Arena arena = Arena.ofShared();
    private final int wakeFd;
    private final MemorySegment wakeBuffer;
    private final MemorySegment one;
    private boolean wakeArmed;
    /** Agent-only: requests with an SQE published to the ring and no CQE yet. */
    private int inKernel;

    RingAgent(final IoUring ring, final int eventFd)
    {
        this.ring = ring;
        this.wakeFd = eventFd;
        this.wakeBuffer = arena.allocate(JAVA_LONG);
        this.one = arena.allocate(JAVA_LONG);
        one.set(JAVA_LONG, 0, 1L);
        final int slots = ring.cqEntries() - 1;
        this.requests = new UringRequest[slots];
        this.freeRequests = new IndexStack(slots);
        this.submissions = new ManyToOneConcurrentArrayQueue<>(slots);
        this.backlog = new UringRequest[slots];
        for (int i = 0; i < slots; i++)
        {
            requests[i] = new UringRequest(i);
        }
    }

    @Override
    public String roleName()
    {
        return "understudy-uring";
    }

    int capacity()
    {
        return requests.length;
    }

    long callbackErrors()
    {
        return callbackErrors.get();
    }

    /** @return 0, or the negated errno with which {@code io_uring_enter} failed for good. */
    int ringError()
    {
        return ringError;
    }

    /** @return what a request refused by {@link #enterSubmit()} completes with: EIO if the ring broke. */
    int refusal()
    {
        return ringError != 0 ? -Errno.EIO : -Errno.ESHUTDOWN;
    }

    // ---------------------------------------------------------------- submitter side (any thread)

    /**
     * Registers a submitter that is about to acquire and queue a request.
     *
     * @return false if the engine is closing: the caller must {@link #exitSubmit()} and fail the request.
     */
    boolean enterSubmit()
    {
        // Counted before the accepting check; onClose clears accepting, then waits for this count, so a
        // submitter either sees "closed" or is waited for (volatile on both sides, Dekker again).
        activeSubmitters.incrementAndGet();
        return accepting;
    }

    void exitSubmit()
    {
        activeSubmitters.decrementAndGet();
    }

    /** @return a free slot, or null when every slot is in use (back-pressure). */
    UringRequest acquire()
    {
        final int slot = freeRequests.pop();
        return slot == IndexStack.EMPTY ? null : requests[slot];
    }

    /** Queues a filled slot for the agent and wakes it if it sleeps. Never fails: the queue holds every slot. */
    void submit(final UringRequest request)
    {
        submissions.offer(request);
        if (sleeping.get() == 1 && sleeping.compareAndSet(1, 0))
        {
            UringSyscalls.signal(wakeFd, one);
        }
    }

    /** Asks the agent to stop: no new request is accepted and a sleeping agent is woken. */
    void shutdown()
    {
        accepting = false;
        UringSyscalls.signal(wakeFd, one);
    }

    // ---------------------------------------------------------------- agent thread

    @Override
    public int doWork()
    {
        if (!wakeArmed && ring.sqSpace() > 0)
        {
            armWake();
        }
        int work = issue(accepting ? DRAIN_LIMIT : 0);
        final int reaped = ring.reap(this, REAP_LIMIT);
        work += reaped;
        if (reaped > 0 || backlogSize > 0)
        {
            if (ring.toSubmit() > 0)
            {
                check(ring.enter(false));
            }
            return work;
        }
        sleeping.set(1);
        final boolean block = wakeArmed && accepting && submissions.isEmpty();
        final int rc = ring.enter(block);
        sleeping.set(0);
        check(rc);
        return work;
    }

    @Override
    public void onClose()
    {
        if (ringError != 0)
        {
            // The ring and the eventfd stay until releaseBroken(): the engine may still signal the eventfd.
            failEverything();
            return;
        }
        // accepting is false: a submitter either saw that (and fails its own request) or is counted. A slot
        // is free, held by a counted submitter, queued, in the backlog or in the kernel: once none is in the
        // last four places, every request has completed.
        while (true)
        {
            failQueued();
            if (inKernel == 0 && activeSubmitters.get() == 0 && submissions.isEmpty())
            {
                break;
            }
            if (inKernel > 0)
            {
                check(ring.enter(true));
                ring.reap(this, REAP_LIMIT);
            }
            else
            {
                Thread.onSpinWait(); // a submitter is between acquiring a slot and queueing it
            }
        }
        // Complete the wake read before the ring goes, so the kernel never writes into a freed buffer.
        if (wakeArmed)
        {
            UringSyscalls.signal(wakeFd, one);
            while (wakeArmed)
            {
                check(ring.enter(true));
                ring.reap(this, REAP_LIMIT);
            }
        }
        ring.close();
        try (Arena scratch = Arena.ofConfined())
        {
            UringSyscalls.close(scratch.allocate(UringSyscalls.ERRNO_LAYOUT), wakeFd);
        }
        arena.close();
    }

    private void failQueued()
    {
        final int result = refusal();
        while (backlogSize > 0)
        {
            complete(pollBacklog(), result);
        }
        UringRequest request;
        while ((request = submissions.poll()) != null)
        {
            complete(request, result);
        }
    }

    /** A broken ring: every request fails with EIO except those the kernel completes within the grace time. */
    private void failEverything()
    {
        // accepting is false: once no submitter is counted and the queues are empty, a slot still in use is
        // one whose SQE was published (consumed by the kernel or not).
        while (activeSubmitters.get() > 0 || !submissions.isEmpty() || backlogSize > 0)
        {
            failQueued();
            Thread.onSpinWait();
        }
        final long deadline = System.nanoTime() + BROKEN_REAP_NANOS;
        while (inKernel > 0 && System.nanoTime() - deadline < 0)
        {
            if (ring.reap(this, REAP_LIMIT) == 0)
            {
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
            }
            failQueued(); // continuations of what was reaped cannot be issued any more
        }
        for (final UringRequest request : requests)
        {
            if (request.device != null)
            {
                complete(request, -Errno.EIO);
            }
        }
        inKernel = 0;
    }

    /**
     * Frees a broken ring's resources; the engine calls it after the agent thread has ended, when nobody
     * signals the eventfd any more. Does nothing for a ring that did not break (its onClose freed them).
     */
    void releaseBroken()
    {
        if (ringError == 0)
        {
            return;
        }
        // After EBADF the ring fd number is no longer ours (it may name someone else's file by now): unmap only.
        if (ringError == -Errno.EBADF)
        {
            ring.unmap();
        }
        else
        {
            ring.close();
        }
        try (Arena scratch = Arena.ofConfined())
        {
            UringSyscalls.close(scratch.allocate(UringSyscalls.ERRNO_LAYOUT), wakeFd);
        }
        arena.close();
    }

    private void armWake()
    {
        ring.push(SubmissionQueueEntry.IORING_OP_READ, wakeFd, 0, wakeBuffer.address(), 8, 0, WAKE,
            UringRequest.NOT_FIXED);
        wakeArmed = true;
    }

    private void check(final int rc)
    {
        if (rc < 0 && rc != -UringSyscalls.EINTR && rc != -UringSyscalls.EAGAIN && rc != -UringSyscalls.EBUSY)
        {
            // Volatile writes: a submitter that sees accepting false fails its request with refusal() = EIO.
            ringError = rc;
            accepting = false;
            throw new AgentTerminationException(
                "io_uring_enter failed for good (" + Errno.name(rc) + "): the ring is stopped, requests fail with EIO");
        }
    }

    /** Issues continuations first (they hold slots already), then up to {@code limit} new requests. */
    private int issue(final int limit)
    {
        int work = 0;
        int space = ring.sqSpace();
        while (backlogSize > 0 && space > 0)
        {
            space -= step(pollBacklog());
            work++;
        }
        for (int i = 0; i < limit && space > 0; i++)
        {
            final UringRequest request = submissions.poll();
            if (request == null)
            {
                break;
            }
            space -= start(request);
            work++;
        }
        return work;
    }

    /** @return SQEs used (0 or 1). */
    private int start(final UringRequest request)
    {
        if (request.device.isClosing())
        {
            complete(request, -Errno.ESHUTDOWN);
            return 0;
        }
        switch (request.op)
        {
            case Op.READ, Op.WRITE, Op.FLUSH -> request.stage = request.op == Op.FLUSH ? STAGE_SYNC : STAGE_IO;
            case Op.DISCARD -> request.stage = STAGE_PUNCH;
            case Op.WRITE_ZEROES ->
                request.stage = (request.flags & BlockDevice.FLAG_NO_HOLE) == 0 ? STAGE_PUNCH : STAGE_ZERO_RANGE;
            default ->
            {
                complete(request, -Errno.EINVAL);
                return 0;
            }
        }
        if (request.length == 0 && request.op != Op.FLUSH)
        {
            complete(request, 0);
            return 0;
        }
        return step(request);
    }

    /** Publishes the SQE of the request's current stage. @return SQEs used (always 1). */
    private int step(final UringRequest request)
    {
        final int fd = request.device.fd();
        final long userData = request.index;
        switch (request.stage)
        {
            case STAGE_IO ->
            {
                final boolean read = request.op == Op.READ;
                final boolean fixed = request.fixedBuffer != UringRequest.NOT_FIXED;
                final byte opcode = read ?
                    (fixed ? SubmissionQueueEntry.IORING_OP_READ_FIXED : SubmissionQueueEntry.IORING_OP_READ) :
                    (fixed ? SubmissionQueueEntry.IORING_OP_WRITE_FIXED : SubmissionQueueEntry.IORING_OP_WRITE);
                final int rwFlags = !read && (request.flags & BlockDevice.FLAG_FUA) != 0 ?
                    SubmissionQueueEntry.RWF_DSYNC : 0;
                ring.push(opcode, fd, request.offset + request.done, request.buffer.address() + request.done,
                    (int)(request.length - request.done), rwFlags, userData, fixed ? request.fixedBuffer : 0);
            }
            case STAGE_PUNCH -> ring.push(SubmissionQueueEntry.IORING_OP_FALLOCATE, fd, request.offset, request.length,
                LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, 0, userData, (short)0);
            case STAGE_ZERO_RANGE -> ring.push(SubmissionQueueEntry.IORING_OP_FALLOCATE, fd, request.offset,
                request.length, LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE, 0, userData, (short)0);
            case STAGE_WRITE_ZEROES ->
            {
                final int chunk = (int)Math.min(ZERO_CHUNK, request.length - request.done);
                ring.push(SubmissionQueueEntry.IORING_OP_WRITE, fd, request.offset + request.done, ZEROES.address(),
                    chunk, 0, userData, (short)0);
            }
            default -> ring.push(SubmissionQueueEntry.IORING_OP_FSYNC, fd, 0, 0, 0,
                SubmissionQueueEntry.IORING_FSYNC_DATASYNC, userData, (short)0);
        }
        inKernel++;
        return 1;
    }

    @Override
    public void onCompletion(final long userData, final int result)
    {
        if (userData == WAKE)
        {
            wakeArmed = false;
            return;
        }
        inKernel--;
        final UringRequest request = requests[(int)userData];
        switch (request.stage)
        {
            case STAGE_IO -> onTransfer(request, result);
            case STAGE_PUNCH ->
            {
                if (request.op == Op.DISCARD)
                {
                    // Discard is a hint: where holes cannot be punched it succeeds doing nothing.
                    complete(request, isUnsupported(result) && result != -Errno.EINVAL ? 0 : result);
                }
                else if (isUnsupported(result))
                {
                    next(request, STAGE_ZERO_RANGE);
                }
                else
                {
                    zeroed(request, result);
                }
            }
            case STAGE_ZERO_RANGE ->
            {
                if (!isUnsupported(result))
                {
                    zeroed(request, result);
                }
                else if ((request.flags & BlockDevice.FLAG_FAST_ZERO) != 0)
                {
                    complete(request, -Errno.ENOTSUP);
                }
                else
                {
                    request.done = 0;
                    next(request, STAGE_WRITE_ZEROES);
                }
            }
            case STAGE_WRITE_ZEROES ->
            {
                if (result < 0)
                {
                    complete(request, mapSpace(result));
                }
                else
                {
                    request.done += result;
                    if (request.done < request.length)
                    {
                        next(request, STAGE_WRITE_ZEROES);
                    }
                    else
                    {
                        zeroed(request, 0);
                    }
                }
            }
            default -> complete(request, result);
        }
    }

    private void onTransfer(final UringRequest request, final int result)
    {
        if (result < 0)
        {
            complete(request, request.op == Op.WRITE ? mapSpace(result) : result);
            return;
        }
        if (result == 0 && request.op == Op.READ)
        {
            // End of file: the file was shortened behind our back; the rest reads as zeroes.
            request.buffer.asSlice(request.done, request.length - request.done).fill((byte)0);
            complete(request, (int)request.length);
            return;
        }
        request.done += result;
        if (request.done < request.length)
        {
            next(request, STAGE_IO);
        }
        else
        {
            complete(request, (int)request.length);
        }
    }

    /** The range reads as zeroes now; make it durable first if FUA was asked for. */
    private void zeroed(final UringRequest request, final int result)
    {
        if (result < 0)
        {
            complete(request, mapSpace(result));
        }
        else if ((request.flags & BlockDevice.FLAG_FUA) != 0)
        {
            next(request, STAGE_SYNC);
        }
        else
        {
            complete(request, 0);
        }
    }

    private void next(final UringRequest request, final int stage)
    {
        request.stage = stage;
        backlog[(backlogHead + backlogSize) % backlog.length] = request;
        backlogSize++;
    }

    private UringRequest pollBacklog()
    {
        final UringRequest request = backlog[backlogHead];
        backlog[backlogHead] = null;
        backlogHead = (backlogHead + 1) % backlog.length;
        backlogSize--;
        return request;
    }

    private void complete(final UringRequest request, final int result)
    {
        final UringFileDevice device = request.device;
        final IoCompletion completion = request.completion;
        final long cookie = request.cookie;
        request.clear();
        // Recycle the slots before the callback so that a completion handler can resubmit at once.
        freeRequests.push(request.index);
        device.releaseSlot();
        try
        {
            completion.onComplete(cookie, result);
        }
        catch (final RuntimeException | Error e)
        {
            // A broken callback must not stop the ring that serves every other device: count and report it.
            if (callbackErrors.getAndIncrement() == 0)
            {
                UringIoEngine.LOG.log(System.Logger.Level.ERROR,
                    "io_uring completion callback failed (further failures only counted)", e);
            }
        }
        finally
        {
            device.onCompleted();
        }
    }

    private static boolean isUnsupported(final int rc)
    {
        return rc == -Errno.EOPNOTSUPP || rc == -Errno.ENOSYS || rc == -Errno.EINVAL;
    }

    /** EDQUOT and EFBIG mean "no space" to a block device user. */
    private static int mapSpace(final int rc)
    {
        return rc == -Errno.EDQUOT || rc == -Errno.EFBIG ? -Errno.ENOSPC : rc;
    }
}
