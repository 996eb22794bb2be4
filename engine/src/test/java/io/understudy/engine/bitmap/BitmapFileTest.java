package io.understudy.engine.bitmap;

import io.understudy.engine.bitmap.BitmapFile.BitmapFileException;
import io.understudy.engine.bitmap.BitmapFile.Reason;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.UUID;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BitmapFileTest
{
    private static final int CLUSTER = 65536;
    private static final long DISK = (1L << 30) + 4096; // 16385 clusters
    private static final UUID GENERATION = UUID.fromString("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    @TempDir
    Path dir;

    @Test
    void bitsEpochAndCleanFlagSurviveReopen() throws IOException
    {
        final Path path = dir.resolve("cow.bitmap");
        try (BitmapFile file = BitmapFile.create(path, CLUSTER, DISK, GENERATION))
        {
            assertFalse(file.wasCleanShutdown(), "a new file has no clean history");
            assertEquals(16385, file.bitmap().bitCount());
            file.bitmap().testAndSet(0);
            file.bitmap().setRange(1000, 1100);
            file.bitmap().testAndSet(16384);
            file.epoch(7);
        }
        final byte[] header = new byte[8];
        try (RandomAccessFile raf = new RandomAccessFile(path.toFile(), "r"))
        {
            raf.readFully(header);
        }
        assertArrayEquals("USBITMAP".getBytes(StandardCharsets.US_ASCII), header);
        try (BitmapFile file = BitmapFile.open(path, CLUSTER, DISK, GENERATION))
        {
            assertTrue(file.wasCleanShutdown());
            assertEquals(7, file.epoch());
            assertEquals(GENERATION, file.generation());
            assertEquals(102, file.bitmap().cardinality());
            assertEquals(1000, file.bitmap().nextSetBit(1));
            assertEquals(16384, file.bitmap().nextSetBit(1100));
            // simulate a crash: copy the file while it is open (flag cleared at open) and open the copy
            file.bitmap().testAndSet(5);
            file.force();
            Files.copy(path, dir.resolve("crashed.bitmap"));
        }
        try (BitmapFile crashed = BitmapFile.open(dir.resolve("crashed.bitmap"), CLUSTER, DISK, GENERATION))
        {
            assertFalse(crashed.wasCleanShutdown());
            assertTrue(crashed.bitmap().get(5));
        }
    }

    @Test
    void refusesForeignAndCorruptFilesWithANamedReason() throws IOException
    {
        final Path path = dir.resolve("b");
        BitmapFile.create(path, CLUSTER, DISK, GENERATION).close();
        final byte[] good = Files.readAllBytes(path);

        assertReason(Reason.CLUSTER_SIZE_MISMATCH, path, 4096, DISK, GENERATION);
        assertReason(Reason.DISK_SIZE_MISMATCH, path, CLUSTER, DISK + 1, GENERATION);
        assertReason(Reason.GENERATION_MISMATCH, path, CLUSTER, DISK, UUID.randomUUID());

        corrupt(path, good, 0, (byte)'X');
        assertReason(Reason.BAD_MAGIC, path, CLUSTER, DISK, GENERATION);
        corrupt(path, good, BitmapFile.VERSION_OFFSET, (byte)2);
        assertReason(Reason.UNSUPPORTED_VERSION, path, CLUSTER, DISK, GENERATION);
        corrupt(path, good, BitmapFile.EPOCH_OFFSET, (byte)1);
        assertReason(Reason.BAD_CHECKSUM, path, CLUSTER, DISK, GENERATION);

        Files.write(path, Arrays.copyOf(good, good.length - 8));
        assertReason(Reason.TRUNCATED, path, CLUSTER, DISK, GENERATION);
        Files.write(path, Arrays.copyOf(good, 100));
        assertReason(Reason.TRUNCATED, path, CLUSTER, DISK, GENERATION);

        Files.write(path, good);
        try (BitmapFile file = BitmapFile.open(path, CLUSTER, DISK, GENERATION))
        {
            assertTrue(file.wasCleanShutdown());
        }
    }

    private static void corrupt(final Path path, final byte[] good, final int offset, final byte value)
        throws IOException
    {
        final byte[] bytes = good.clone();
        bytes[offset] = value;
        Files.write(path, bytes);
    }

    private static void assertReason(
        final Reason reason, final Path path, final int cluster, final long disk, final UUID generation)
    {
        final BitmapFileException e = assertThrows(BitmapFileException.class,
            () -> BitmapFile.open(path, cluster, disk, generation).close());
        assertEquals(reason, e.reason(), e.getMessage());
    }
}
