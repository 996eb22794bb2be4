package io.understudy.cli.counters;

import org.agrona.IoUtil;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The header both of a daemon's mapped files start with (the counters file and the error log), so that their
 * readers can refuse a file that is not theirs, of another version, or cut short, and can tell whose it is:
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                  Magic (8 ASCII bytes, e.g. USTDYCTR)         |  0
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |                        Version (int32)                        |  8
 *  +---------------------------------------------------------------+
 *  |                       Role code (int32)                       | 12
 *  +---------------------------------------------------------------+
 *  |                   Process id of the writer (int64)            | 16
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |             Start time, ms since the epoch (int64)            | 24
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |  Heartbeat, ms since the epoch (int64, counters file only)    | 32
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |                   Length of section 1 (int32)                 | 40
 *  +---------------------------------------------------------------+
 *  |                   Length of section 2 (int32)                 | 44
 *  +---------------------------------------------------------------+
 *  |                   Flags (int32, bit 0: shared mode)           | 48
 *  +---------------------------------------------------------------+
 *  |                    Reserved up to byte 128                    | 52
 *  +---------------------------------------------------------------+
 *  |                    Section 1, then section 2                  | 128
 * </pre>
 * All integers are little-endian (the machine's order: writer and readers share the host). The writer fills
 * the file, then writes the magic last with a volatile store, so a reader that sees the magic sees the rest.
 * The 128-byte header keeps the sections cache-line and 8-byte aligned, as Agrona's buffers require.
 */
final class MappedFileHeader
{
    static final int MAGIC_OFFSET = 0;
    static final int VERSION_OFFSET = 8;
    static final int ROLE_OFFSET = 12;
    static final int PID_OFFSET = 16;
    static final int START_TIME_OFFSET = 24;
    static final int HEARTBEAT_OFFSET = 32;
    static final int SECTION_1_LENGTH_OFFSET = 40;
    static final int SECTION_2_LENGTH_OFFSET = 44;
    static final int FLAGS_OFFSET = 48;
    static final int LENGTH = 128;

    private MappedFileHeader()
    {
    }

    /** The magic as the little-endian long a reader sees at offset 0. */
    static long magic(final String ascii)
    {
        long magic = 0;
        for (int i = 7; i >= 0; i--)
        {
            magic = magic << 8 | ascii.charAt(i);
        }
        return magic;
    }

    /**
     * Creates {@code path} afresh (zero-filled). Replaces only an empty file or one of its own kind left by a
     * process that is gone: never somebody else's file (a mistyped path naming a disk image), nor the file of a
     * live daemon (two daemons given the same path).
     *
     * @param what the file's kind, for messages ("counters file").
     */
    static MappedByteBuffer create(final Path path, final long magic, final long length, final String what)
    {
        final Path absolute = path.toAbsolutePath();
        final long owner = existingOwner(absolute, magic, what);
        if (owner != 0 && owner != ProcessHandle.current().pid() &&
            ProcessHandle.of(owner).map(ProcessHandle::isAlive).orElse(false))
        {
            throw new MappedFileException(MappedFileException.Reason.IN_USE, path, "in use by the running " +
                "process " + owner + " (give this daemon another file)");
        }
        try
        {
            Files.deleteIfExists(absolute);
            return IoUtil.mapNewFile(absolute.toFile(), length, true);
        }
        catch (final IOException | RuntimeException e)
        {
            throw new MappedFileException(MappedFileException.Reason.UNREADABLE, path, "cannot create (" +
                e.getMessage() + ")");
        }
    }

    /**
     * Maps an existing file read-only and checks its magic, version and length.
     *
     * @param what the file's kind, for messages ("counters file").
     */
    static UnsafeBuffer open(final Path path, final long magic, final int version, final String what)
    {
        if (!Files.exists(path))
        {
            throw new MappedFileException(MappedFileException.Reason.MISSING, path, "no " + what + " here (is the " +
                "daemon running, and was it given this path?)");
        }
        final long size;
        try
        {
            size = Files.size(path);
        }
        catch (final IOException e)
        {
            throw new MappedFileException(MappedFileException.Reason.UNREADABLE, path, e.getMessage());
        }
        if (size < LENGTH)
        {
            throw new MappedFileException(MappedFileException.Reason.TRUNCATED, path, "truncated: " + size +
                " bytes, shorter than the " + LENGTH + "-byte header of a " + what);
        }
        final MappedByteBuffer mapped;
        try
        {
            mapped = IoUtil.mapExistingFile(path.toFile(), FileChannel.MapMode.READ_ONLY, what);
        }
        catch (final RuntimeException e)
        {
            throw new MappedFileException(MappedFileException.Reason.UNREADABLE, path, "cannot map (" +
                e.getMessage() + ")");
        }
        final UnsafeBuffer buffer = new UnsafeBuffer(mapped);
        // Acquire: pairs with the writer's volatile store of the magic after the rest of the header.
        final long found = buffer.getLongVolatile(MAGIC_OFFSET);
        if (found != magic)
        {
            IoUtil.unmap(mapped);
            throw new MappedFileException(MappedFileException.Reason.NOT_OURS, path, "not an understudy " + what +
                " (magic " + Long.toHexString(found) + ", expected " + Long.toHexString(magic) + ")");
        }
        final int foundVersion = buffer.getInt(VERSION_OFFSET);
        if (foundVersion != version)
        {
            IoUtil.unmap(mapped);
            throw new MappedFileException(MappedFileException.Reason.WRONG_VERSION, path, what + " version " +
                foundVersion + ", this understudy reads version " + version + " (use the daemon's understudy)");
        }
        final long expected = (long)LENGTH + buffer.getInt(SECTION_1_LENGTH_OFFSET) +
            buffer.getInt(SECTION_2_LENGTH_OFFSET);
        if (size < expected)
        {
            IoUtil.unmap(mapped);
            throw new MappedFileException(MappedFileException.Reason.TRUNCATED, path, "truncated: " + size +
                " bytes, its header says " + expected);
        }
        return buffer;
    }

    /**
     * @return the pid in the header of an existing file of this kind, 0 if there is no file or it is empty.
     * @throws MappedFileException NOT_OURS for any other file, UNREADABLE if it cannot be read.
     */
    private static long existingOwner(final Path path, final long magic, final String what)
    {
        try
        {
            if (!Files.exists(path) || Files.size(path) == 0)
            {
                return 0;
            }
            if (Files.size(path) >= LENGTH)
            {
                final MappedByteBuffer mapped = IoUtil.mapExistingFile(path.toFile(), FileChannel.MapMode.READ_ONLY,
                    what, 0, LENGTH);
                try
                {
                    final UnsafeBuffer header = new UnsafeBuffer(mapped);
                    if (header.getLongVolatile(MAGIC_OFFSET) == magic)
                    {
                        return header.getLong(PID_OFFSET);
                    }
                }
                finally
                {
                    IoUtil.unmap(mapped);
                }
            }
        }
        catch (final IOException | RuntimeException e)
        {
            throw new MappedFileException(MappedFileException.Reason.UNREADABLE, path, "cannot read (" +
                e.getMessage() + ")");
        }
        throw new MappedFileException(MappedFileException.Reason.NOT_OURS, path, "exists and is not an understudy " +
            what + ": refusing to replace it (remove it, or give another path)");
    }
}
