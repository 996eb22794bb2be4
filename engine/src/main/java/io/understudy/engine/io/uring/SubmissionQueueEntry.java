package io.understudy.engine.io.uring;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * Flyweight over one 64-byte {@code struct io_uring_sqe} in the kernel-shared SQE array. Little-endian
 * (host order), fields at constant offsets:
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------+---------------+-------------------------------+
 *  |    opcode     |     flags     |            ioprio             |  0
 *  +---------------+---------------+-------------------------------+
 *  |                              fd                               |  4
 *  +---------------------------------------------------------------+
 *  |                 off (file offset, or addr2)                   |  8
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |          addr (buffer address; length for FALLOCATE)          | 16
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |              len (bytes; mode for FALLOCATE)                  | 24
 *  +---------------------------------------------------------------+
 *  |        op flags: rw_flags (RWF_*) / fsync_flags / ...         | 28
 *  +---------------------------------------------------------------+
 *  |             user_data (request slot index here)               | 32
 *  |                                                               |
 *  +-------------------------------+-------------------------------+
 *  |  buf_index (fixed buffers)    |          personality          | 40
 *  +-------------------------------+-------------------------------+
 *  |                  file_index / splice_fd_in                    | 44
 *  +---------------------------------------------------------------+
 *  |                  addr3 / pad (16 bytes, zero)                 | 48
 *  +---------------------------------------------------------------+
 * </pre>
 * {@link #prepare} writes all 64 bytes on every use: a stale {@code buf_index}, {@code rw_flags} or
 * {@code personality} left by an earlier request would silently change the meaning of the next one.
 * The writes are plain; the ring publishes them with a release store of the SQ tail.
 */
final class SubmissionQueueEntry
{
    static final int SIZE = 64;

    static final byte IORING_OP_NOP = 0;
    static final byte IORING_OP_FSYNC = 3;
    static final byte IORING_OP_READ_FIXED = 4;
    static final byte IORING_OP_WRITE_FIXED = 5;
    static final byte IORING_OP_FALLOCATE = 17;
    static final byte IORING_OP_READ = 22;
    static final byte IORING_OP_WRITE = 23;

    /** fsync_flags: data integrity only (fdatasync). */
    static final int IORING_FSYNC_DATASYNC = 1;
    /** rw_flags: this write is durable on completion, like a write followed by fdatasync (pwritev2 RWF_DSYNC). */
    static final int RWF_DSYNC = 0x2;

    private static final long OPCODE = 0;
    private static final long FLAGS = 1;
    private static final long IOPRIO = 2;
    private static final long FD = 4;
    private static final long OFF = 8;
    private static final long ADDR = 16;
    private static final long LEN = 24;
    private static final long OP_FLAGS = 28;
    private static final long USER_DATA = 32;
    private static final long BUF_INDEX = 40;
    private static final long PERSONALITY = 42;
    private static final long FILE_INDEX = 44;
    private static final long ADDR3 = 48;
    private static final long PAD = 56;

    private MemorySegment entries;
    private long base;

    /** Points the flyweight at entry {@code index} of the SQE array. */
    SubmissionQueueEntry wrap(final MemorySegment entries, final int index)
    {
        this.entries = entries;
        this.base = (long)index * SIZE;
        return this;
    }

    void prepare(
        final byte opcode, final int fd, final long offset, final long address, final int length, final int opFlags,
        final long userData, final short bufferIndex)
    {
        final MemorySegment s = entries;
        final long b = base;
        s.set(JAVA_BYTE, b + OPCODE, opcode);
        s.set(JAVA_BYTE, b + FLAGS, (byte)0);
        s.set(JAVA_SHORT, b + IOPRIO, (short)0);
        s.set(JAVA_INT, b + FD, fd);
        s.set(JAVA_LONG, b + OFF, offset);
        s.set(JAVA_LONG, b + ADDR, address);
        s.set(JAVA_INT, b + LEN, length);
        s.set(JAVA_INT, b + OP_FLAGS, opFlags);
        s.set(JAVA_LONG, b + USER_DATA, userData);
        s.set(JAVA_SHORT, b + BUF_INDEX, bufferIndex);
        s.set(JAVA_SHORT, b + PERSONALITY, (short)0);
        s.set(JAVA_INT, b + FILE_INDEX, 0);
        s.set(JAVA_LONG, b + ADDR3, 0L);
        s.set(JAVA_LONG, b + PAD, 0L);
    }
}
