package io.understudy.engine.bitmap;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.UUID;
import java.util.zip.CRC32C;

/**
 * An {@link AtomicBitmap} persisted in a memory-mapped file: the bits are updated in place by the bitmap's
 * atomic accesses on the mapping, and the header says what disk they describe and whether the last user shut
 * down cleanly. A bitmap whose file was not closed cleanly may have lost updates the kernel had not written
 * back; the caller must then treat the disk as wholly dirty (for a COW or dirty bitmap: resynchronise).
 * <p>
 * <b>Layout</b> (little endian; the bitmap area in native order, which is little endian on every platform
 * we run on and is checked when opening):
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                  magic "USBITMAP" (8 bytes)                    |  0
 *  +-------------------------------+-------------------------------+
 *  |          version (1)          |      header length (4096)     |  8
 *  +-------------------------------+-------------------------------+
 *  |         cluster size          |   flags (bit 0: clean close)  |  16
 *  +-------------------------------+-------------------------------+
 *  |                     disk size in bytes (u64)                  |  24
 *  +---------------------------------------------------------------+
 *  |                     bit count (u64)                           |  32
 *  +---------------------------------------------------------------+
 *  |                     epoch (u64)                               |  40
 *  +---------------------------------------------------------------+
 *  |                generation id (UUID, 16 bytes)                 |  48
 *  +---------------------------------------------------------------+
 *  |              bitmap area length in bytes (u64)                |  64
 *  +-------------------------------+-------------------------------+
 *  |   CRC32C of bytes [0, 72)     |          zero padding ...     |  72
 *  +-------------------------------+-------------------------------+
 *  |            ... to 4096: bitmap area (AtomicBitmap layout)     |  4096
 *  +---------------------------------------------------------------+
 * </pre>
 * The header is rewritten (with its checksum) and forced whenever the flags or the epoch change; the clean
 * flag is cleared and forced at open, set only after the bits were forced at {@link #close()}.
 * <p>
 * A plain FFM mapping ({@link FileChannel#map(FileChannel.MapMode, long, long, Arena)}) is used rather than
 * Chronicle Bytes' {@code MappedBytes}: the file has a fixed size known at creation, so chunked elastic
 * mapping brings nothing, the bitmap needs VarHandle atomics on a {@link MemorySegment} (which the FFM
 * mapping gives directly), and it avoids Chronicle's extra JVM flags and transitive dependencies.
 */
public final class BitmapFile implements AutoCloseable
{
    /** Why a file was refused. */
    public enum Reason
    {
        TRUNCATED, BAD_MAGIC, UNSUPPORTED_VERSION, BAD_CHECKSUM, CLUSTER_SIZE_MISMATCH, DISK_SIZE_MISMATCH,
        GENERATION_MISMATCH, INCONSISTENT_LAYOUT
    }

    /** A bitmap file that is corrupt or describes another disk; {@link #reason()} names why. */
    public static final class BitmapFileException extends IOException
    {
        private static final long serialVersionUID = 1L;
        private final Reason reason;

        BitmapFileException(final Path path, final Reason reason, final String detail)
        {
            super(path + ": refused bitmap file (" + reason + "): " + detail);
            this.reason = reason;
        }

        public Reason reason()
        {
            return reason;
        }
    }

    public static final long MAGIC = 0x50414D5449425355L; // "USBITMAP" read as a little-endian u64
    public static final int VERSION = 1;
    public static final int HEADER_LENGTH = 4096;

    static final int MAGIC_OFFSET = 0;
    static final int VERSION_OFFSET = 8;
    static final int HEADER_LENGTH_OFFSET = 12;
    static final int CLUSTER_SIZE_OFFSET = 16;
    static final int FLAGS_OFFSET = 20;
    static final int DISK_SIZE_OFFSET = 24;
    static final int BIT_COUNT_OFFSET = 32;
    static final int EPOCH_OFFSET = 40;
    static final int GENERATION_OFFSET = 48;
    static final int AREA_LENGTH_OFFSET = 64;
    static final int CHECKSUM_OFFSET = 72;
    static final int FLAG_CLEAN = 1;

    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment mapping;
    private final AtomicBitmap bitmap;
    private final boolean wasClean;
    private boolean closed;

    private BitmapFile(final Path path, final Arena arena, final MemorySegment mapping, final boolean wasClean)
    {
        this.path = path;
        this.arena = arena;
        this.mapping = mapping;
        this.wasClean = wasClean;
        this.bitmap = new AtomicBitmap(mapping.get(LONG, BIT_COUNT_OFFSET),
            mapping.asSlice(HEADER_LENGTH, mapping.get(LONG, AREA_LENGTH_OFFSET)));
    }

    /** Creates (or replaces) a file for a disk of {@code diskSize} bytes, all bits clear, epoch 0. */
    public static BitmapFile create(final Path path, final int clusterSize, final long diskSize, final UUID generation)
        throws IOException
    {
        if (Integer.bitCount(clusterSize) != 1 || diskSize <= 0)
        {
            throw new IllegalArgumentException("clusterSize must be a power of two, diskSize positive: " +
                clusterSize + ", " + diskSize);
        }
        requireLittleEndian();
        final long bitCount = (diskSize + clusterSize - 1) / clusterSize;
        final long areaLength = AtomicBitmap.requiredBytes(bitCount);
        final Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
            StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING))
        {
            final MemorySegment mapping = channel.map(FileChannel.MapMode.READ_WRITE, 0, HEADER_LENGTH + areaLength, arena);
            mapping.set(LONG, MAGIC_OFFSET, MAGIC);
            mapping.set(INT, VERSION_OFFSET, VERSION);
            mapping.set(INT, HEADER_LENGTH_OFFSET, HEADER_LENGTH);
            mapping.set(INT, CLUSTER_SIZE_OFFSET, clusterSize);
            mapping.set(INT, FLAGS_OFFSET, 0);
            mapping.set(LONG, DISK_SIZE_OFFSET, diskSize);
            mapping.set(LONG, BIT_COUNT_OFFSET, bitCount);
            mapping.set(LONG, EPOCH_OFFSET, 0);
            mapping.set(LONG, GENERATION_OFFSET, generation.getMostSignificantBits());
            mapping.set(LONG, GENERATION_OFFSET + 8, generation.getLeastSignificantBits());
            mapping.set(LONG, AREA_LENGTH_OFFSET, areaLength);
            mapping.set(INT, CHECKSUM_OFFSET, checksum(mapping));
            mapping.force();
            return new BitmapFile(path, arena, mapping, false);
        }
        catch (final IOException | RuntimeException e)
        {
            arena.close();
            throw e;
        }
    }

    /**
     * Opens a file written by {@link #create} for the same disk, keeping its bits, and marks it in use (not
     * clean) until {@link #close()}.
     *
     * @throws BitmapFileException if the file is corrupt or describes another disk or generation.
     */
    public static BitmapFile open(
        final Path path, final int clusterSize, final long diskSize, final UUID generation) throws IOException
    {
        requireLittleEndian();
        final Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE))
        {
            final long fileSize = channel.size();
            if (fileSize < HEADER_LENGTH)
            {
                throw new BitmapFileException(path, Reason.TRUNCATED, fileSize + " bytes, header needs " + HEADER_LENGTH);
            }
            final MemorySegment mapping = channel.map(FileChannel.MapMode.READ_WRITE, 0, fileSize, arena);
            validate(path, mapping, fileSize, clusterSize, diskSize, generation);
            final boolean wasClean = (mapping.get(INT, FLAGS_OFFSET) & FLAG_CLEAN) != 0;
            final BitmapFile file = new BitmapFile(path, arena, mapping, wasClean);
            file.writeFlags(0);
            return file;
        }
        catch (final IOException | RuntimeException e)
        {
            arena.close();
            throw e;
        }
    }

    public AtomicBitmap bitmap()
    {
        return bitmap;
    }

    /** @return true if the previous user closed the file cleanly (its bits are then complete). */
    public boolean wasCleanShutdown()
    {
        return wasClean;
    }

    public long epoch()
    {
        return mapping.get(LONG, EPOCH_OFFSET);
    }

    /** Records a new epoch durably (header rewritten and forced). Not thread-safe against itself. */
    public void epoch(final long epoch)
    {
        mapping.set(LONG, EPOCH_OFFSET, epoch);
        mapping.set(INT, CHECKSUM_OFFSET, checksum(mapping));
        mapping.asSlice(0, HEADER_LENGTH).force();
    }

    public UUID generation()
    {
        return new UUID(mapping.get(LONG, GENERATION_OFFSET), mapping.get(LONG, GENERATION_OFFSET + 8));
    }

    /** Writes the bits back to the file (msync). */
    public void force()
    {
        mapping.force();
    }

    /** Forces the bits, then marks the file clean and forces the header, then unmaps. No access may follow. */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        mapping.force();
        writeFlags(FLAG_CLEAN);
        arena.close();
    }

    private void writeFlags(final int flags)
    {
        mapping.set(INT, FLAGS_OFFSET, flags);
        mapping.set(INT, CHECKSUM_OFFSET, checksum(mapping));
        mapping.asSlice(0, HEADER_LENGTH).force();
    }

    private static void validate(
        final Path path, final MemorySegment mapping, final long fileSize, final int clusterSize, final long diskSize,
        final UUID generation) throws BitmapFileException
    {
        final long magic = mapping.get(LONG, MAGIC_OFFSET);
        if (magic != MAGIC)
        {
            throw new BitmapFileException(path, Reason.BAD_MAGIC, "0x" + Long.toHexString(magic));
        }
        final int version = mapping.get(INT, VERSION_OFFSET);
        if (version != VERSION)
        {
            throw new BitmapFileException(path, Reason.UNSUPPORTED_VERSION, "version " + version + ", this build reads " +
                VERSION);
        }
        final int stored = mapping.get(INT, CHECKSUM_OFFSET);
        final int computed = checksum(mapping);
        if (stored != computed)
        {
            throw new BitmapFileException(path, Reason.BAD_CHECKSUM, "stored 0x" + Integer.toHexString(stored) +
                ", computed 0x" + Integer.toHexString(computed));
        }
        final int fileCluster = mapping.get(INT, CLUSTER_SIZE_OFFSET);
        if (fileCluster != clusterSize)
        {
            throw new BitmapFileException(path, Reason.CLUSTER_SIZE_MISMATCH, "file has " + fileCluster + ", expected " +
                clusterSize);
        }
        final long fileDisk = mapping.get(LONG, DISK_SIZE_OFFSET);
        if (fileDisk != diskSize)
        {
            throw new BitmapFileException(path, Reason.DISK_SIZE_MISMATCH, "file describes " + fileDisk +
                " bytes, disk has " + diskSize);
        }
        final UUID fileGeneration = new UUID(mapping.get(LONG, GENERATION_OFFSET),
            mapping.get(LONG, GENERATION_OFFSET + 8));
        if (!fileGeneration.equals(generation))
        {
            throw new BitmapFileException(path, Reason.GENERATION_MISMATCH, "file is generation " + fileGeneration +
                ", expected " + generation);
        }
        final long bitCount = mapping.get(LONG, BIT_COUNT_OFFSET);
        final long areaLength = mapping.get(LONG, AREA_LENGTH_OFFSET);
        if (mapping.get(INT, HEADER_LENGTH_OFFSET) != HEADER_LENGTH ||
            bitCount != (diskSize + clusterSize - 1) / clusterSize ||
            areaLength != AtomicBitmap.requiredBytes(bitCount))
        {
            throw new BitmapFileException(path, Reason.INCONSISTENT_LAYOUT, "bit count " + bitCount + ", area " +
                areaLength + " bytes");
        }
        if (fileSize < HEADER_LENGTH + areaLength)
        {
            throw new BitmapFileException(path, Reason.TRUNCATED, fileSize + " bytes, layout needs " +
                (HEADER_LENGTH + areaLength));
        }
    }

    private static int checksum(final MemorySegment mapping)
    {
        final CRC32C crc = new CRC32C();
        crc.update(mapping.asSlice(0, CHECKSUM_OFFSET).asByteBuffer());
        return (int)crc.getValue();
    }

    private static void requireLittleEndian()
    {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN)
        {
            throw new UnsupportedOperationException("bitmap files are little endian; this platform is not");
        }
    }
}
