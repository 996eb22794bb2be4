package io.understudy.cli.demo;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The model and the verifier on their own: they must accept the right disk and name the first wrong byte. */
class DiskVerifierTest
{
    private static final long SIZE = 3L << 20;
    private static final int BLOCK = DiskModel.BLOCK_SIZE;

    @TempDir
    Path dir;

    @Test
    void contentIsAFunctionOfSeedBlockAndStampOnly()
    {
        try (Arena arena = Arena.ofConfined())
        {
            final MemorySegment a = arena.allocate(BLOCK);
            final MemorySegment b = arena.allocate(BLOCK);
            new DiskModel(SIZE, 7).fill(5, 3, a, 0);
            new DiskModel(SIZE, 7).fill(5, 3, b, 0);
            assertEquals(-1, a.mismatch(b));
            new DiskModel(SIZE, 7).fill(5, 4, b, 0);
            assertNotEquals(-1, a.mismatch(b));
            new DiskModel(SIZE, 7).fill(6, 3, b, 0);
            assertNotEquals(-1, a.mismatch(b));
            new DiskModel(SIZE, 8).fill(5, 3, b, 0);
            assertNotEquals(-1, a.mismatch(b));
        }
    }

    @Test
    void acceptsTheInitialImageAndCountsEveryByte() throws IOException
    {
        final DiskModel model = new DiskModel(SIZE, 42);
        final Path image = dir.resolve("disk.img");
        ExpectedImage.write(model, image);
        final Verification result = DiskVerifier.verify(model, image);
        assertTrue(result.ok(), result.describe());
        assertEquals(SIZE, result.bytesVerified());
    }

    @Test
    void aCompletedCheckpointMovesTheEpochsWritesIntoTheExpectedState() throws IOException
    {
        final DiskModel model = new DiskModel(SIZE, 42);
        final Path before = dir.resolve("before.img");
        ExpectedImage.write(model, before);
        model.acknowledged(10, 256, 1);
        model.acknowledged(300, 1, 2);
        assertEquals(257, model.pendingBlocks());
        // Not checkpointed yet: the initial image is still what a failover must leave.
        assertTrue(DiskVerifier.verify(model, before).ok());
        assertEquals(257, model.commitEpoch());
        assertEquals(0, model.pendingBlocks());
        final Verification stale = DiskVerifier.verify(model, before);
        assertFalse(stale.ok());
        assertEquals(10L * BLOCK, stale.mismatchOffset());
        final Path after = dir.resolve("after.img");
        ExpectedImage.write(model, after);
        assertTrue(DiskVerifier.verify(model, after).ok());
    }

    @Test
    void namesTheFirstDifferingByteOfACorruptedDisk() throws IOException
    {
        final DiskModel model = new DiskModel(SIZE, 42);
        model.acknowledged(0, 700, 9);
        model.commitEpoch();
        final Path image = dir.resolve("disk.img");
        ExpectedImage.write(model, image);
        final long corrupt = (1L << 20) + 12345;
        final byte original;
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw"))
        {
            file.seek(corrupt);
            original = file.readByte();
            file.seek(corrupt);
            file.writeByte(original ^ 0x40);
            file.seek(corrupt + 4096);
            file.writeByte(0);
        }
        final Verification result = DiskVerifier.verify(model, image);
        assertFalse(result.ok());
        assertEquals(corrupt, result.mismatchOffset());
        assertEquals(corrupt, result.bytesVerified());
        assertEquals(Byte.toUnsignedInt(original), result.expected());
        assertEquals(Byte.toUnsignedInt(original) ^ 0x40, result.actual());
        assertTrue(result.describe().contains("offset " + corrupt), result.describe());
    }

    @Test
    void aDiskHoldingTheUnfinishedEpochIsRejected() throws IOException
    {
        final DiskModel model = new DiskModel(SIZE, 42);
        model.acknowledged(4, 1, 1);
        model.commitEpoch();
        final Path image = dir.resolve("disk.img");
        ExpectedImage.write(model, image);
        // A write of the open epoch that was not rolled back: block 100 holds stamp 2 instead of the initial content.
        model.acknowledged(100, 1, 2);
        final DiskModel leaked = new DiskModel(SIZE, 42);
        leaked.acknowledged(4, 1, 1);
        leaked.acknowledged(100, 1, 2);
        leaked.commitEpoch();
        final Path notRolledBack = dir.resolve("leaked.img");
        ExpectedImage.write(leaked, notRolledBack);
        final Verification result = DiskVerifier.verify(model, notRolledBack);
        assertFalse(result.ok());
        assertEquals(100L * BLOCK, result.mismatchOffset() & -BLOCK);
        assertTrue(DiskVerifier.verify(model, image).ok());
    }

    @Test
    void aShortOrLongDiskDiffersWhereTheModelAndTheFileDisagree() throws IOException
    {
        final DiskModel model = new DiskModel(SIZE, 42);
        final Path image = dir.resolve("disk.img");
        ExpectedImage.write(model, image);
        final byte[] full = Files.readAllBytes(image);
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw"))
        {
            file.setLength(SIZE - 100);
        }
        final Verification shorter = DiskVerifier.verify(model, image);
        assertEquals(SIZE - 100, shorter.mismatchOffset());
        assertEquals(-1, shorter.actual());
        assertTrue(shorter.describe().contains("end of disk"), shorter.describe());
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw"))
        {
            file.setLength(0);
            file.write(full);
            file.write(7);
        }
        final Verification longer = DiskVerifier.verify(model, image);
        assertEquals(SIZE, longer.mismatchOffset());
        assertEquals(7, longer.actual());
    }
}
