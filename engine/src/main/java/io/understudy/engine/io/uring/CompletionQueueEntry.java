package io.understudy.engine.io.uring;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Flyweight over one 16-byte {@code struct io_uring_cqe} in the kernel-shared CQ ring. Little-endian
 * (host order):
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                user_data (copied from the SQE)                |  0
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |             res (bytes transferred, or -errno)                |  8
 *  +---------------------------------------------------------------+
 *  |                        flags (IORING_CQE_F_*)                 | 12
 *  +---------------------------------------------------------------+
 * </pre>
 * Read with plain loads: the ring makes them visible with an acquire load of the CQ tail, and hands the
 * slot back to the kernel with a release store of the CQ head only after both fields are read.
 */
final class CompletionQueueEntry
{
    static final int SIZE = 16;

    private static final long USER_DATA = 0;
    private static final long RES = 8;

    private MemorySegment cqes;
    private long base;

    CompletionQueueEntry wrap(final MemorySegment cqes, final int index)
    {
        this.cqes = cqes;
        this.base = (long)index * SIZE;
        return this;
    }

    long userData()
    {
        return cqes.get(JAVA_LONG, base + USER_DATA);
    }

    int result()
    {
        return cqes.get(JAVA_INT, base + RES);
    }
}
