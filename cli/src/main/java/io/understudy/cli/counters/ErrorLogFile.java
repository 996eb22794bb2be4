package io.understudy.cli.counters;

import org.agrona.IoUtil;
import org.agrona.concurrent.EpochClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.concurrent.errors.DistinctErrorLog;
import org.agrona.concurrent.errors.ErrorConsumer;
import org.agrona.concurrent.errors.ErrorLogReader;

import java.nio.MappedByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A daemon's deduplicated error log in a memory-mapped file, readable by {@code understudy errors} while the
 * daemon runs, after it stopped and after a crash (the kernel keeps a shared mapping's pages when the process
 * dies, even by SIGKILL).
 * <p>
 * The file is a {@link MappedFileHeader} (magic {@code USTDYERR}, version {@value #VERSION}, role, pid, start
 * time; section 1 = the log's capacity, section 2 empty) followed by Agrona's {@link DistinctErrorLog}: one record
 * per distinct error (type, message and stack trace), with its observation count and first and last times:
 * <pre>
 *  +----------------------------+ 0
 *  | header (128 bytes)         |
 *  +----------------------------+ 128
 *  | DistinctErrorLog records:  |   length, count, last time, first time, encoded stack trace (UTF-8),
 *  | capacity bytes             |   each record aligned to 8 bytes; a full log counts the errors it cannot
 *  |                            |   store no further (the daemon's error counter still does)
 *  +----------------------------+ 128 + capacity
 * </pre>
 */
public final class ErrorLogFile implements AutoCloseable
{
    public static final long MAGIC = MappedFileHeader.magic("USTDYERR");
    public static final int VERSION = 1;
    /** As Aeron's default error buffer: room for some hundreds of distinct stack traces. */
    public static final int DEFAULT_CAPACITY = 1 << 20;

    private static final String WHAT = "error log";

    private final UnsafeBuffer buffer;
    private final UnsafeBuffer records;

    private ErrorLogFile(final UnsafeBuffer buffer)
    {
        this.buffer = buffer;
        this.records = new UnsafeBuffer(buffer, MappedFileHeader.LENGTH,
            buffer.getInt(MappedFileHeader.SECTION_1_LENGTH_OFFSET));
    }

    /**
     * Creates the log for this process (replacing a log left by a stopped daemon: read it before restarting).
     *
     * @throws MappedFileException IN_USE if a live daemon owns the file, NOT_OURS if it is another kind of file,
     *                             UNREADABLE if it cannot be created.
     */
    public static ErrorLogFile create(final Path path, final DaemonRole role, final int capacity,
        final long startTimeMs)
    {
        if (capacity <= 0 || capacity % DistinctErrorLog.RECORD_ALIGNMENT != 0)
        {
            throw new IllegalArgumentException("capacity must be a positive multiple of " +
                DistinctErrorLog.RECORD_ALIGNMENT + ": " + capacity);
        }
        final MappedByteBuffer mapped = MappedFileHeader.create(path, MAGIC, (long)MappedFileHeader.LENGTH + capacity,
            WHAT);
        final UnsafeBuffer buffer = new UnsafeBuffer(mapped);
        buffer.putInt(MappedFileHeader.VERSION_OFFSET, VERSION);
        buffer.putInt(MappedFileHeader.ROLE_OFFSET, role.code());
        buffer.putLong(MappedFileHeader.PID_OFFSET, ProcessHandle.current().pid());
        buffer.putLong(MappedFileHeader.START_TIME_OFFSET, startTimeMs);
        buffer.putInt(MappedFileHeader.SECTION_1_LENGTH_OFFSET, capacity);
        buffer.putInt(MappedFileHeader.SECTION_2_LENGTH_OFFSET, 0);
        // Release: a reader that sees the magic sees the header written above.
        buffer.putLongVolatile(MappedFileHeader.MAGIC_OFFSET, MAGIC);
        return new ErrorLogFile(buffer);
    }

    /**
     * Maps an existing log read-only, for {@code understudy errors}.
     *
     * @throws MappedFileException MISSING, TRUNCATED, NOT_OURS, WRONG_VERSION or UNREADABLE.
     */
    public static ErrorLogFile open(final Path path)
    {
        return new ErrorLogFile(MappedFileHeader.open(path, MAGIC, VERSION, WHAT));
    }

    /** @return a writer over the log; it is thread-safe (Agrona synchronises new records). */
    public DistinctErrorLog newWriter(final EpochClock clock)
    {
        return new DistinctErrorLog(records, clock, StandardCharsets.UTF_8);
    }

    /**
     * Reads every distinct error, oldest first.
     *
     * @return the number of distinct errors.
     */
    public int read(final ErrorConsumer consumer)
    {
        return ErrorLogReader.read(records, consumer);
    }

    public long pid()
    {
        return buffer.getLong(MappedFileHeader.PID_OFFSET);
    }

    public long startTimeMs()
    {
        return buffer.getLong(MappedFileHeader.START_TIME_OFFSET);
    }

    public DaemonRole role()
    {
        return DaemonRole.of(buffer.getInt(MappedFileHeader.ROLE_OFFSET));
    }

    /** Unmaps the log (it stays on disk). */
    @Override
    public void close()
    {
        IoUtil.unmap(buffer.byteBuffer());
    }
}
