package io.understudy.cli.counters;

import org.agrona.IoUtil;
import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.concurrent.status.CountersManager;
import org.agrona.concurrent.status.CountersReader;

import java.nio.MappedByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A daemon's counters in a memory-mapped file, as Aeron's CnC file: the daemon writes them, {@code understudy
 * stat} maps the file and reads them without talking to the daemon, so it answers even when the daemon is hung
 * or stopped (and says so: the header's heartbeat stops moving).
 * <p>
 * The file is a {@link MappedFileHeader} (magic {@code USTDYCTR}, version {@value #VERSION}, role, pid, start
 * time, heartbeat) followed by Agrona's counters layout, {@value #MAX_COUNTERS} counters at most:
 * <pre>
 *  +----------------------------+ 0
 *  | header (128 bytes)         |   section 1 length = metadata length, section 2 length = values length
 *  +----------------------------+ 128
 *  | metadata: 512 bytes per    |   Agrona {@link CountersReader} metadata records: state, type id, key,
 *  | counter                    |   label (the counter's name, e.g. "forwarded-bytes")
 *  +----------------------------+ 128 + MAX_COUNTERS * 512
 *  | values: 128 bytes per      |   one int64 per counter, alone on its cache lines (no false sharing)
 *  | counter                    |
 *  +----------------------------+ 128 + MAX_COUNTERS * 640
 * </pre>
 * The daemon allocates every counter at start (a reader may see the list grow while the daemon starts) and
 * frees none. Values are written with release stores and read with volatile loads; the heartbeat likewise.
 * The file is left behind at exit, so the last figures of a daemon that stopped or crashed stay readable.
 */
public final class CountersFile implements AutoCloseable
{
    public static final long MAGIC = MappedFileHeader.magic("USTDYCTR");
    public static final int VERSION = 1;
    public static final int MAX_COUNTERS = 128;
    static final int METADATA_LENGTH = MAX_COUNTERS * CountersReader.METADATA_LENGTH;
    static final int VALUES_LENGTH = MAX_COUNTERS * CountersReader.COUNTER_LENGTH;
    static final int FLAG_SHARED = 1;

    private static final String WHAT = "counters file";

    private final UnsafeBuffer buffer;
    private final CountersReader reader;
    private final CountersManager manager;

    private CountersFile(final UnsafeBuffer buffer, final boolean writable)
    {
        this.buffer = buffer;
        final UnsafeBuffer metadata = new UnsafeBuffer(buffer, MappedFileHeader.LENGTH, METADATA_LENGTH);
        final UnsafeBuffer values = new UnsafeBuffer(buffer, MappedFileHeader.LENGTH + METADATA_LENGTH,
            VALUES_LENGTH);
        if (writable)
        {
            manager = new CountersManager(metadata, values, StandardCharsets.US_ASCII);
            reader = manager;
        }
        else
        {
            manager = null;
            reader = new CountersReader(metadata, values, StandardCharsets.US_ASCII);
        }
    }

    /**
     * Creates the file for this process (replacing a file left by a stopped daemon).
     *
     * @param role        the daemon's role.
     * @param shared      shared-disk mode (replication daemons).
     * @param startTimeMs when the daemon started, ms since the epoch; also the first heartbeat.
     * @throws MappedFileException IN_USE if a live daemon owns the file, NOT_OURS if it is another kind of file,
     *                             UNREADABLE if it cannot be created.
     */
    public static CountersFile create(
        final Path path, final DaemonRole role, final boolean shared, final long startTimeMs)
    {
        final MappedByteBuffer mapped = MappedFileHeader.create(path, MAGIC,
            (long)MappedFileHeader.LENGTH + METADATA_LENGTH + VALUES_LENGTH, WHAT);
        final UnsafeBuffer buffer = new UnsafeBuffer(mapped);
        buffer.putInt(MappedFileHeader.VERSION_OFFSET, VERSION);
        buffer.putInt(MappedFileHeader.ROLE_OFFSET, role.code());
        buffer.putLong(MappedFileHeader.PID_OFFSET, ProcessHandle.current().pid());
        buffer.putLong(MappedFileHeader.START_TIME_OFFSET, startTimeMs);
        buffer.putLong(MappedFileHeader.HEARTBEAT_OFFSET, startTimeMs);
        buffer.putInt(MappedFileHeader.SECTION_1_LENGTH_OFFSET, METADATA_LENGTH);
        buffer.putInt(MappedFileHeader.SECTION_2_LENGTH_OFFSET, VALUES_LENGTH);
        buffer.putInt(MappedFileHeader.FLAGS_OFFSET, shared ? FLAG_SHARED : 0);
        // Release: a reader that sees the magic sees the header written above.
        buffer.putLongVolatile(MappedFileHeader.MAGIC_OFFSET, MAGIC);
        return new CountersFile(buffer, true);
    }

    /**
     * Maps an existing file read-only, for {@code understudy stat}.
     *
     * @throws MappedFileException MISSING, TRUNCATED, NOT_OURS, WRONG_VERSION or UNREADABLE.
     */
    public static CountersFile open(final Path path)
    {
        return new CountersFile(MappedFileHeader.open(path, MAGIC, VERSION, WHAT), false);
    }

    /** @return the counters' allocator; only the creating daemon has one. */
    public CountersManager manager()
    {
        if (manager == null)
        {
            throw new IllegalStateException("a counters file opened for reading has no manager");
        }
        return manager;
    }

    public CountersReader reader()
    {
        return reader;
    }

    /** Tells readers the daemon is alive; called by its duty cycle. */
    public void heartbeat(final long nowMs)
    {
        // Release store: the counter values sampled before it are visible to a reader that sees the new time.
        buffer.putLongRelease(MappedFileHeader.HEARTBEAT_OFFSET, nowMs);
    }

    /** @return the last heartbeat, ms since the epoch. */
    public long heartbeatMs()
    {
        return buffer.getLongVolatile(MappedFileHeader.HEARTBEAT_OFFSET);
    }

    public long startTimeMs()
    {
        return buffer.getLong(MappedFileHeader.START_TIME_OFFSET);
    }

    public long pid()
    {
        return buffer.getLong(MappedFileHeader.PID_OFFSET);
    }

    public DaemonRole role()
    {
        return DaemonRole.of(buffer.getInt(MappedFileHeader.ROLE_OFFSET));
    }

    public boolean shared()
    {
        return (buffer.getInt(MappedFileHeader.FLAGS_OFFSET) & FLAG_SHARED) != 0;
    }

    public int version()
    {
        return buffer.getInt(MappedFileHeader.VERSION_OFFSET);
    }

    /** Unmaps the file (it stays on disk). */
    @Override
    public void close()
    {
        IoUtil.unmap(buffer.byteBuffer());
    }
}
