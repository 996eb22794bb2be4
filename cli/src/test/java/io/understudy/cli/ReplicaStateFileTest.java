package io.understudy.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReplicaStateFileTest
{
    @TempDir
    Path dir;

    @Test
    void roundTripKeepsTheLastPhaseWrittenAndTheLayoutIsExact() throws IOException
    {
        final Path path = dir.resolve("h.state");
        assertNull(ReplicaStateFile.read(path));
        try (ReplicaStateFile file = ReplicaStateFile.open(path, 0x1122334455667788L))
        {
            file.write(ReplicaStateFile.Phase.RUNNING, 0, 0);
            file.write(ReplicaStateFile.Phase.CHECKPOINTING, 7, 0);
            assertEquals(new ReplicaStateFile.State(ReplicaStateFile.Phase.CHECKPOINTING, 7, 0x1122334455667788L, 0),
                ReplicaStateFile.read(path));
            file.write(ReplicaStateFile.Phase.CLEAN, 8, ReplicaStateFile.FLAG_FAILED_OVER);
        }
        assertEquals(new ReplicaStateFile.State(ReplicaStateFile.Phase.CLEAN, 8, 0x1122334455667788L,
            ReplicaStateFile.FLAG_FAILED_OVER), ReplicaStateFile.read(path));

        final byte[] bytes = Files.readAllBytes(path);
        assertEquals(ReplicaStateFile.LENGTH, bytes.length);
        assertArrayEquals("USTATE\0\1".getBytes(StandardCharsets.US_ASCII), Arrays.copyOf(bytes, 8));
        final ByteBuffer le = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1, le.getInt(8));
        assertEquals(0, le.getInt(12));
        assertEquals(8, le.getLong(16));
        assertEquals(0x1122334455667788L, le.getLong(24));
        assertEquals(1, le.getInt(32));
        final CRC32C crc = new CRC32C();
        crc.update(bytes, 0, 60);
        assertEquals((int)crc.getValue(), le.getInt(60));
    }

    @Test
    void tornRecordIsRefusedByItsChecksum() throws IOException
    {
        final Path path = written();
        patch(path, 16, (byte)9); // the epoch, as a torn write would leave it
        assertRefused(path, "checksum mismatch");
    }

    @Test
    void otherVersionIsRefused() throws IOException
    {
        final Path path = written();
        patch(path, 8, (byte)2);
        assertRefused(path, "version 2, this understudy knows 1");
    }

    @Test
    void foreignOrShortFileIsRefused() throws IOException
    {
        final Path foreign = dir.resolve("foreign");
        Files.write(foreign, new byte[ReplicaStateFile.LENGTH]);
        assertRefused(foreign, "bad magic");
        final Path shortFile = dir.resolve("short");
        Files.write(shortFile, new byte[10]);
        assertRefused(shortFile, "10 bytes, expected 64");
    }

    private Path written()
    {
        final Path path = dir.resolve("s.state");
        try (ReplicaStateFile file = ReplicaStateFile.open(path, 1))
        {
            file.write(ReplicaStateFile.Phase.RUNNING, 3, 0);
        }
        catch (final IOException e)
        {
            throw new AssertionError(e);
        }
        return path;
    }

    private static void patch(final Path path, final long offset, final byte value) throws IOException
    {
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.seek(offset);
            file.write(value);
        }
    }

    private static void assertRefused(final Path path, final String reason)
    {
        final UserException e = assertThrows(UserException.class, () -> ReplicaStateFile.read(path));
        assertTrue(e.getMessage().startsWith(path + ": not a valid replication state file ("), e.getMessage());
        assertTrue(e.getMessage().contains(reason), e.getMessage());
    }
}
