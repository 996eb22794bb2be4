package io.understudy.cli;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * The secondary's persistent replication state (AX-13, AX-14). The overlays H and A are volatile (emptied at
 * start), so S alone is a valid disk only after a run that ended cleanly: while a run is RUNNING, S holds primary
 * writes of an epoch whose originals lived in H; during CHECKPOINTING and FAILOVER it is half-way between two
 * states. A record that is not {@link Phase#CLEAN} at start therefore means the previous run crashed and S must be
 * resynchronised from the primary. Every phase change is written in place and forced to the device before the
 * step it announces starts; the record is one 64-byte block, smaller than any device's atomic write unit, and its
 * CRC-32C tells a torn or foreign file from a valid one.
 * <p>
 * The generation names the pair S belongs to: the generation id of the primary whose hello the secondary
 * accepted, or a fresh one once a failover made S the survivor's own disk (DRBD's generation identifiers are the
 * model). It is what tells a stale peer from the pair's own.
 *
 * <pre>
 *    0                   4                   8
 *   +-------------------------------------------+
 *   | magic "USTATE\0\1" (8 bytes)              |  0
 *   +-------------------+-----------------------+
 *   | version (u32) = 1 | phase (u32)           |  8
 *   +-------------------+-----------------------+
 *   | epoch (s64): last completed checkpoint     | 16
 *   +-------------------------------------------+
 *   | generation (s64): the pair's generation   | 24
 *   +-------------------+-----------------------+
 *   | flags (u32)       | reserved (0)          | 32
 *   +-------------------+-----------------------+
 *   | reserved (0), 20 bytes                    | 40
 *   +                   +-----------------------+
 *   |                   | crc32c of 0..59 (u32) | 56
 *   +-------------------+-----------------------+
 *   all fields little-endian
 * </pre>
 */
final class ReplicaStateFile implements AutoCloseable
{
    static final int LENGTH = 64;
    static final long MAGIC = 0x0100_4554_4154_5355L; // "USTATE\0\1" read little-endian
    static final int VERSION = 1;
    /** Flag of a CLEAN record: a failover committed A and H into S, which is now the survivor's own disk. */
    static final int FLAG_FAILED_OVER = 1;

    private static final int VERSION_OFFSET = 8;
    private static final int PHASE_OFFSET = 12;
    private static final int EPOCH_OFFSET = 16;
    private static final int GENERATION_OFFSET = 24;
    private static final int FLAGS_OFFSET = 32;
    private static final int CRC_OFFSET = 60;

    /** The phases of a run, in the order a run goes through them; the ordinal is the on-disk value. */
    enum Phase
    {
        /** The run ended cleanly: S holds every acknowledged write, flushed (or the survivor's disk). */
        CLEAN,
        /** Forwarded writes may reach S; their originals live in the volatile H. */
        RUNNING,
        /** A checkpoint is emptying A and H. */
        CHECKPOINTING,
        /** A failover is copying A and H into S. */
        FAILOVER
    }

    /** One decoded record. */
    record State(Phase phase, long epoch, long generation, int flags)
    {
    }

    private final Path path;
    private final FileChannel channel;
    private final ByteBuffer block = ByteBuffer.allocateDirect(LENGTH).order(ByteOrder.LITTLE_ENDIAN);
    private final CRC32C crc = new CRC32C();
    /** Guarded by this: written with every record. */
    private long generation;

    private ReplicaStateFile(final Path path, final FileChannel channel, final long generation)
    {
        this.path = path;
        this.channel = channel;
        this.generation = generation;
    }

    /**
     * Reads the record at {@code path}.
     *
     * @return the record, or null if there is no file (a first run).
     * @throws UserException naming the file and what is wrong with it: short, foreign, other version, torn.
     */
    static State read(final Path path)
    {
        final ByteBuffer buffer = ByteBuffer.allocate(LENGTH).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ))
        {
            while (buffer.hasRemaining() && channel.read(buffer, buffer.position()) > 0)
            {
                // Keeps reading until the block is complete or the file ends.
            }
        }
        catch (final NoSuchFileException e)
        {
            return null;
        }
        catch (final IOException e)
        {
            throw new UserException(path + ": cannot read the replication state (" + e.getMessage() + ")", e);
        }
        final String refusal = path + ": not a valid replication state file (";
        if (buffer.position() < LENGTH)
        {
            throw new UserException(refusal + buffer.position() + " bytes, expected " + LENGTH + "); move it away " +
                "if it is not ours, resynchronise S and start with --resynced");
        }
        if (buffer.getLong(0) != MAGIC)
        {
            throw new UserException(refusal + "bad magic: a foreign file?); point --state elsewhere or remove it");
        }
        if (buffer.getInt(VERSION_OFFSET) != VERSION)
        {
            throw new UserException(refusal + "version " + Integer.toUnsignedString(buffer.getInt(VERSION_OFFSET)) +
                ", this understudy knows " + VERSION + ")");
        }
        final CRC32C check = new CRC32C();
        check.update(buffer.array(), 0, CRC_OFFSET);
        final int phase = buffer.getInt(PHASE_OFFSET);
        if ((int)check.getValue() != buffer.getInt(CRC_OFFSET) || phase < 0 || phase >= Phase.values().length)
        {
            throw new UserException(refusal + "checksum mismatch: torn or damaged); resynchronise S from the " +
                "primary, remove the file, then start with --resynced");
        }
        return new State(Phase.values()[phase], buffer.getLong(EPOCH_OFFSET), buffer.getLong(GENERATION_OFFSET),
            buffer.getInt(FLAGS_OFFSET));
    }

    /** Opens (creating if needed) the file at {@code path}; records carry {@code generation} until changed. */
    static ReplicaStateFile open(final Path path, final long generation)
    {
        try
        {
            final FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
            final Path parent = path.toAbsolutePath().getParent();
            // A new file's directory entry must be durable too, or a crash could lose the whole record.
            try (FileChannel directory = FileChannel.open(parent, StandardOpenOption.READ))
            {
                directory.force(true);
            }
            return new ReplicaStateFile(path, channel, generation);
        }
        catch (final IOException e)
        {
            throw new UserException(path + ": cannot open the replication state (" + e.getMessage() + ")", e);
        }
    }

    /** Sets the generation the next records carry (a new link adopted, or bumped by a failover). */
    synchronized void generation(final long pairGeneration)
    {
        generation = pairGeneration;
    }

    synchronized long generation()
    {
        return generation;
    }

    /**
     * Writes a record and forces it to the device before returning: the step it announces may start only then.
     *
     * @throws UserException naming the file if the write or the sync fails (the state would be unknown).
     */
    synchronized void write(final Phase phase, final long epoch, final int flags)
    {
        block.clear();
        block.putLong(0, MAGIC).putInt(VERSION_OFFSET, VERSION).putInt(PHASE_OFFSET, phase.ordinal())
            .putLong(EPOCH_OFFSET, epoch).putLong(GENERATION_OFFSET, generation).putInt(FLAGS_OFFSET, flags);
        for (int i = FLAGS_OFFSET + Integer.BYTES; i < CRC_OFFSET; i++)
        {
            block.put(i, (byte)0);
        }
        crc.reset();
        crc.update(block.slice(0, CRC_OFFSET));
        block.putInt(CRC_OFFSET, (int)crc.getValue());
        try
        {
            while (block.hasRemaining())
            {
                channel.write(block, block.position());
            }
            channel.force(false);
        }
        catch (final IOException e)
        {
            throw new UserException(path + ": cannot write the replication state " + phase + " (" + e.getMessage() +
                ")", e);
        }
    }

    Path path()
    {
        return path;
    }

    @Override
    public void close() throws IOException
    {
        channel.close();
    }
}
