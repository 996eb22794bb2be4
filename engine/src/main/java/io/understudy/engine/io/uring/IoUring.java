package io.understudy.engine.io.uring;

import io.understudy.engine.device.Errno;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * One io_uring instance: the ring fd and its three kernel-shared mappings, driven with raw syscalls.
 * <p>
 * Not thread-safe: exactly one thread (the ring agent) fills SQEs, enters the kernel and reaps CQEs.
 * Setup and {@link #close()} may happen on another thread before the agent starts and after it ends
 * (the thread start/join gives the happens-before).
 * <p>
 * {@code io_uring_params}, as passed to {@code io_uring_setup} (120 bytes, x86-64, host order); the
 * kernel fills in everything below {@code flags} and the offsets of the ring fields:
 * <pre>
 *  0 sq_entries | 4 cq_entries | 8 flags | 12 sq_thread_cpu | 16 sq_thread_idle | 20 features | 24 wq_fd
 *  28 resv[3]
 *  40 sq_off: 40 head | 44 tail | 48 ring_mask | 52 ring_entries | 56 flags | 60 dropped | 64 array
 *             68 resv1 | 72 user_addr (8)
 *  80 cq_off: 80 head | 84 tail | 88 ring_mask | 92 ring_entries | 96 overflow | 100 cqes | 104 flags
 *             108 resv1 | 112 user_addr (8)
 * </pre>
 * The mappings, with {@code IORING_FEAT_SINGLE_MMAP} (one region serves both rings):
 * <pre>
 *  ring region (offset IORING_OFF_SQ_RING)          SQE array (offset IORING_OFF_SQES)
 *  +------------------------------------------+     +-------------------------------+
 *  | sq head (kernel) / sq tail (us)          |     | sqe[0]        64 bytes        |
 *  | cq head (us) / cq tail (kernel)          |     | sqe[1]                        |
 *  | ... masks, flags, overflow ...           |     | ...                           |
 *  | cqes[cq_entries], 16 bytes each          |     | sqe[sq_entries - 1]           |
 *  | sq array[sq_entries], u32 SQE indexes    |     +-------------------------------+
 *  +------------------------------------------+
 * </pre>
 * Memory ordering, the same contract liburing implements with its smp barriers:
 * <ul>
 *   <li>SQEs are written with plain stores, then the SQ tail is stored with release semantics, so the
 *   kernel (which loads the tail with acquire) sees complete entries.</li>
 *   <li>The SQ head is loaded with acquire: the kernel releases it after it stops reading the entries, so
 *   the slots behind it may be overwritten.</li>
 *   <li>The CQ tail is loaded with acquire, pairing with the kernel's release after writing the CQEs; the
 *   CQEs are then read with plain loads, and the CQ head is stored with release so that the kernel does
 *   not overwrite a CQE still being read.</li>
 * </ul>
 * The SQ index array is filled once with the identity mapping (SQE i at array slot i), as SQEs are used
 * strictly in ring order.
 */
final class IoUring implements AutoCloseable
{
    private static final VarHandle INT = JAVA_INT.varHandle();
    private static final int PARAMS_SIZE = 120;
    private static final int IOVEC_SIZE = 16;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment errno = arena.allocate(UringSyscalls.ERRNO_LAYOUT);
    private final SubmissionQueueEntry sqe = new SubmissionQueueEntry();
    private final CompletionQueueEntry cqe = new CompletionQueueEntry();
    private final int ringFd;
    private final int sqEntries;
    private final int cqEntries;
    private final MemorySegment sqRing;
    private final MemorySegment cqRing;
    private final MemorySegment sqes;
    private final long sqHeadOffset;
    private final long sqTailOffset;
    private final int sqMask;
    private final long cqHeadOffset;
    private final long cqTailOffset;
    private final int cqMask;
    private final MemorySegment cqes;
    /** Next SQ tail to publish; only the agent writes it. */
    private int sqTail;
    /** SQEs published but not yet passed to io_uring_enter. */
    private int toSubmit;
    private boolean closed;

    /**
     * Sets up a ring of {@code entries} SQEs (rounded up to a power of two by the kernel) and
     * {@code 2 * entries} CQEs.
     *
     * @throws IOException naming the errno if the kernel, a sysctl or a seccomp filter refuses io_uring.
     */
    IoUring(final int entries) throws IOException
    {
        final MemorySegment params = arena.allocate(PARAMS_SIZE, 8);
        final int fd = UringSyscalls.setup(errno, entries, params);
        if (fd < 0)
        {
            arena.close();
            throw new IOException("io_uring_setup failed: " + Errno.name(fd) + explain(fd));
        }
        ringFd = fd;
        sqEntries = params.get(JAVA_INT, 0);
        cqEntries = params.get(JAVA_INT, 4);
        sqHeadOffset = Integer.toUnsignedLong(params.get(JAVA_INT, 40));
        sqTailOffset = Integer.toUnsignedLong(params.get(JAVA_INT, 44));
        final long sqArrayOffset = Integer.toUnsignedLong(params.get(JAVA_INT, 64));
        cqHeadOffset = Integer.toUnsignedLong(params.get(JAVA_INT, 80));
        cqTailOffset = Integer.toUnsignedLong(params.get(JAVA_INT, 84));
        final long cqesOffset = Integer.toUnsignedLong(params.get(JAVA_INT, 100));

        final long sqRingSize = sqArrayOffset + 4L * sqEntries;
        final long cqRingSize = cqesOffset + (long)CompletionQueueEntry.SIZE * cqEntries;
        final boolean singleMmap = (params.get(JAVA_INT, 20) & UringSyscalls.IORING_FEAT_SINGLE_MMAP) != 0;
        MemorySegment sq = MemorySegment.NULL;
        MemorySegment cq = MemorySegment.NULL;
        MemorySegment entriesMap = MemorySegment.NULL;
        try
        {
            sq = map(singleMmap ? Math.max(sqRingSize, cqRingSize) : sqRingSize, UringSyscalls.IORING_OFF_SQ_RING);
            cq = singleMmap ? sq : map(cqRingSize, UringSyscalls.IORING_OFF_CQ_RING);
            entriesMap = map((long)SubmissionQueueEntry.SIZE * sqEntries, UringSyscalls.IORING_OFF_SQES);
        }
        catch (final IOException e)
        {
            unmapAll(sq, cq, entriesMap);
            UringSyscalls.close(errno, ringFd);
            arena.close();
            throw e;
        }
        sqRing = sq;
        cqRing = cq;
        sqes = entriesMap;
        sqMask = sqRing.get(JAVA_INT, Integer.toUnsignedLong(params.get(JAVA_INT, 48)));
        cqMask = cqRing.get(JAVA_INT, Integer.toUnsignedLong(params.get(JAVA_INT, 88)));
        cqes = cqRing.asSlice(cqesOffset, (long)CompletionQueueEntry.SIZE * cqEntries);
        for (int i = 0; i < sqEntries; i++)
        {
            sqRing.set(JAVA_INT, sqArrayOffset + 4L * i, i);
        }
        // Plain read is fine: no SQE has been submitted, the kernel initialised the tail before setup returned.
        sqTail = sqRing.get(JAVA_INT, sqTailOffset);
    }

    private static String explain(final int negErrno)
    {
        return switch (-negErrno)
        {
            case Errno.ENOSYS -> " (kernel without io_uring, or a seccomp filter blocks it, as containers often do)";
            case Errno.EPERM -> " (kernel.io_uring_disabled sysctl, or a seccomp filter / LSM denies it)";
            case Errno.ENOMEM -> " (RLIMIT_MEMLOCK too low for the ring)";
            default -> "";
        };
    }

    private MemorySegment map(final long length, final long offset) throws IOException
    {
        final MemorySegment mapping = UringSyscalls.mmapRing(errno, ringFd, length, offset);
        if (mapping.equals(MemorySegment.NULL))
        {
            throw new IOException(
                "io_uring mmap failed: " + Errno.name(UringSyscalls.errno(errno)) + " (offset 0x" +
                Long.toHexString(offset) + ")");
        }
        return mapping;
    }

    int cqEntries()
    {
        return cqEntries;
    }

    /** @return free SQ slots: the kernel consumes published entries up to its head. */
    int sqSpace()
    {
        // Acquire: pairs with the kernel's release of the head once it has copied the entries out.
        final int head = (int)INT.getAcquire(sqRing, sqHeadOffset);
        return sqEntries - (sqTail - head);
    }

    /**
     * Fills the next SQE (all 64 bytes) and publishes it. The caller checked {@link #sqSpace()}.
     */
    void push(
        final byte opcode, final int fd, final long offset, final long address, final int length, final int opFlags,
        final long userData, final short bufferIndex)
    {
        sqe.wrap(sqes, sqTail & sqMask).prepare(opcode, fd, offset, address, length, opFlags, userData, bufferIndex);
        sqTail++;
        // Release: the plain SQE stores above become visible to the kernel no later than the new tail.
        INT.setRelease(sqRing, sqTailOffset, sqTail);
        toSubmit++;
    }

    /** @return SQEs published and not yet handed to the kernel. */
    int toSubmit()
    {
        return toSubmit;
    }

    /**
     * Submits every published SQE and, if {@code waitForOne}, sleeps until at least one CQE is available.
     *
     * @return SQEs consumed (0 is normal when only waiting), or -errno; EINTR, EAGAIN and EBUSY are
     * transient (a signal, or no memory / CQ space right now): reap and call again.
     */
    int enter(final boolean waitForOne)
    {
        final int rc = UringSyscalls.enter(
            errno, ringFd, toSubmit, waitForOne ? 1 : 0, waitForOne ? UringSyscalls.IORING_ENTER_GETEVENTS : 0);
        if (rc > 0)
        {
            toSubmit -= rc;
        }
        return rc;
    }

    /**
     * Hands every available CQE to {@code handler}, then returns the slots to the kernel.
     *
     * @return the number of CQEs reaped.
     */
    int reap(final CompletionHandler handler, final int limit)
    {
        int head = (int)INT.get(cqRing, cqHeadOffset); // only we write the head
        // Acquire: every CQE before the tail is fully written (kernel release-stores the tail after it).
        final int tail = (int)INT.getAcquire(cqRing, cqTailOffset);
        int count = 0;
        while (head != tail && count < limit)
        {
            cqe.wrap(cqes, head & cqMask);
            final long userData = cqe.userData();
            final int result = cqe.result();
            head++;
            count++;
            // Release before the callback: the CQE was copied out, and the callback may submit and enter again.
            INT.setRelease(cqRing, cqHeadOffset, head);
            handler.onCompletion(userData, result);
        }
        return count;
    }

    /**
     * Registers {@code buffers} as fixed buffers 0..n-1 (IORING_REGISTER_BUFFERS). The kernel pins them,
     * charged against RLIMIT_MEMLOCK for unprivileged users.
     *
     * @return 0 or -errno (ENOMEM when the memlock limit is too low).
     */
    int registerBuffers(final MemorySegment[] buffers)
    {
        try (Arena scratch = Arena.ofConfined())
        {
            final MemorySegment iovecs = scratch.allocate((long)IOVEC_SIZE * buffers.length, 8);
            for (int i = 0; i < buffers.length; i++)
            {
                iovecs.set(JAVA_LONG, (long)i * IOVEC_SIZE, buffers[i].address());
                iovecs.set(JAVA_LONG, (long)i * IOVEC_SIZE + 8, buffers[i].byteSize());
            }
            return UringSyscalls.register(errno, ringFd, UringSyscalls.IORING_REGISTER_BUFFERS, iovecs, buffers.length);
        }
    }

    /**
     * Unmaps the rings without closing the fd, for a ring whose fd was closed behind our back (EBADF): that
     * number may name another file by now.
     */
    void unmap()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        unmapAll(sqRing, cqRing, sqes);
        arena.close();
    }

    /** Unmaps the rings and closes the fd; the kernel cancels whatever is still in flight. */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        unmapAll(sqRing, cqRing, sqes);
        UringSyscalls.close(errno, ringFd);
        arena.close();
    }

    private void unmapAll(final MemorySegment sq, final MemorySegment cq, final MemorySegment entries)
    {
        if (!entries.equals(MemorySegment.NULL))
        {
            UringSyscalls.munmap(errno, entries);
        }
        if (!cq.equals(MemorySegment.NULL) && cq != sq)
        {
            UringSyscalls.munmap(errno, cq);
        }
        if (!sq.equals(MemorySegment.NULL))
        {
            UringSyscalls.munmap(errno, sq);
        }
    }

    /** Receives each reaped CQE. */
    @FunctionalInterface
    interface CompletionHandler
    {
        void onCompletion(long userData, int result);
    }
}
