package io.understudy.engine.io;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.CopyOffload;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.MemoryDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Copies between files in the kernel ({@link CopyOffload}, copy_file_range): which backends offer them, that the
 * copy moves exactly the asked range, how bad requests are refused, and that a pair of files the kernel cannot
 * copy between answers with an errno that {@link CopyOffload#isUnsupported} accepts.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class CopyOffloadTest
{
    private static final int SIZE = 4 << 20;
    private static final Path SHM = Path.of("/dev/shm");

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = "THREADS.*", mode = EnumSource.Mode.MATCH_ANY)
    void copiesExactlyTheRangeAskedForToTheSameOffsets(final Backend backend) throws IOException
    {
        final Random random = new Random(7);
        final byte[] sourceBytes = randomBytes(random, SIZE);
        final byte[] targetBytes = randomBytes(random, SIZE);
        final Path sourcePath = write("source.img", sourceBytes);
        final Path targetPath = write("target.img", targetBytes);
        // Page-aligned, so that O_DIRECT files take part, but neither a power of two nor a multiple of 64 KiB.
        final long offset = 1_052_672;
        final long length = 614_400;
        try (Backend.Fixture fixture = backend.start();
            BlockDevice source = fixture.engine().open(sourcePath, backend.options());
            BlockDevice target = fixture.engine().open(targetPath, backend.options()))
        {
            final CopyOffload copies = (CopyOffload)target;
            assertTrue(copies.canCopyFrom(source));
            assertEquals(0, SyncIo.run((c, k) -> copies.copyFrom(source, offset, length, c, k)));
            assertEquals(0, SyncIo.run(target::flush));
        }
        final byte[] expected = targetBytes.clone();
        System.arraycopy(sourceBytes, (int)offset, expected, (int)offset, (int)length);
        assertArrayEquals(expected, Files.readAllBytes(targetPath));
        assertArrayEquals(sourceBytes, Files.readAllBytes(sourcePath), "the source is only read");
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"URING_BUFFERED", "URING_DIRECT"})
    void ioUringFilesOfferNoCopiesButCanBeTheSource(final Backend backend) throws IOException
    {
        final Random random = new Random(8);
        final byte[] sourceBytes = randomBytes(random, SIZE);
        final Path sourcePath = write("source.img", sourceBytes);
        final Path targetPath = write("target.img", new byte[SIZE]);
        try (Backend.Fixture fixture = backend.start();
            ThreadPoolIoEngine threads = new ThreadPoolIoEngine(0);
            BlockDevice source = fixture.engine().open(sourcePath, backend.options());
            BlockDevice target = threads.open(targetPath, FileOptions.readWrite()))
        {
            // io_uring has no copy_file_range operation: an io_uring file cannot be the one that copies.
            assertFalse(source instanceof CopyOffload);
            final CopyOffload copies = (CopyOffload)target;
            assertTrue(copies.canCopyFrom(source));
            assertEquals(0, SyncIo.run((c, k) -> copies.copyFrom(source, 0, SIZE, c, k)));
        }
        assertArrayEquals(sourceBytes, Files.readAllBytes(targetPath));
    }

    @Test
    void refusesWhatTheContractRefuses() throws IOException
    {
        final Path largerPath = write("larger.img", randomBytes(new Random(11), SIZE * 2));
        final Path smallerPath = write("smaller.img", new byte[SIZE / 2]);
        final Path targetPath = write("target.img", new byte[SIZE]);
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0);
            BlockDevice larger = engine.open(largerPath, FileOptions.readWrite());
            BlockDevice smaller = engine.open(smallerPath, FileOptions.readWrite());
            BlockDevice target = engine.open(targetPath, FileOptions.readWrite());
            BlockDevice readOnly = engine.open(targetPath, FileOptions.readOnlyFile());
            Arena arena = Arena.ofConfined();
            MemoryDevice memory = new MemoryDevice(arena.allocate(SIZE)))
        {
            final CopyOffload copies = (CopyOffload)target;
            assertEquals(-Errno.ENOSPC, SyncIo.run((c, k) -> copies.copyFrom(larger, SIZE - 4096, 8192, c, k)),
                "past the end of the target, like a write");
            assertEquals(-Errno.EINVAL, SyncIo.run((c, k) -> copies.copyFrom(smaller, SIZE / 2, 4096, c, k)),
                "past the end of the source, like a read");
            assertEquals(-Errno.EPERM, SyncIo.run((c, k) -> ((CopyOffload)readOnly).copyFrom(larger, 0, 4096, c, k)),
                "into a read-only file");
            assertFalse(copies.canCopyFrom(memory));
            assertEquals(-Errno.EOPNOTSUPP, SyncIo.run((c, k) -> copies.copyFrom(memory, 0, 4096, c, k)),
                "from a device that is no file");
            smaller.close();
            assertEquals(-Errno.ESHUTDOWN, SyncIo.run((c, k) -> copies.copyFrom(smaller, 0, 4096, c, k)),
                "from a closed file");
        }
        assertArrayEquals(new byte[SIZE], Files.readAllBytes(targetPath), "nothing was copied");
    }

    @Test
    void pastTheEndOfASourceShortenedBehindOurBackTheRangeReadsAsZeroes() throws IOException
    {
        final Random random = new Random(9);
        final byte[] sourceBytes = randomBytes(random, SIZE);
        final byte[] targetBytes = randomBytes(random, SIZE);
        final Path sourcePath = write("source.img", sourceBytes);
        final Path targetPath = write("target.img", targetBytes);
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0);
            BlockDevice source = engine.open(sourcePath, FileOptions.readWrite());
            BlockDevice target = engine.open(targetPath, FileOptions.readWrite()))
        {
            try (RandomAccessFile file = new RandomAccessFile(sourcePath.toFile(), "rw"))
            {
                file.setLength(SIZE / 2);
            }
            assertEquals(0, SyncIo.run((c, k) -> ((CopyOffload)target).copyFrom(source, SIZE / 4, SIZE / 2, c, k)));
        }
        final byte[] expected = targetBytes.clone();
        System.arraycopy(sourceBytes, SIZE / 4, expected, SIZE / 4, SIZE / 4);
        Arrays.fill(expected, SIZE / 2, SIZE * 3 / 4, (byte)0);
        assertArrayEquals(expected, Files.readAllBytes(targetPath));
    }

    @Test
    void betweenTwoFileSystemsTheKernelRefusesWithAnErrnoMeaningCopyThroughMemory() throws IOException
    {
        assumeTrue(Files.isDirectory(SHM), "needs /dev/shm");
        assumeFalse(Files.getFileStore(SHM).equals(Files.getFileStore(dir)), "needs /dev/shm and " + dir +
            " on two file systems");
        final Path elsewhere = Files.createTempDirectory(SHM, "understudy-copy-offload");
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0))
        {
            final Path sourcePath = write("source.img", randomBytes(new Random(10), SIZE));
            final Path targetPath = elsewhere.resolve("target.img");
            Files.write(targetPath, new byte[SIZE]);
            try (BlockDevice source = engine.open(sourcePath, FileOptions.readWrite());
                BlockDevice target = engine.open(targetPath, FileOptions.readWrite()))
            {
                final int result = SyncIo.run((c, k) -> ((CopyOffload)target).copyFrom(source, 0, 65536, c, k));
                assertEquals(-Errno.EXDEV, result, Errno.name(result));
                assertTrue(CopyOffload.isUnsupported(result));
            }
            assertArrayEquals(new byte[SIZE], Files.readAllBytes(targetPath), "nothing was copied");
        }
        finally
        {
            Files.deleteIfExists(elsewhere.resolve("target.img"));
            Files.deleteIfExists(elsewhere);
        }
    }

    private Path write(final String name, final byte[] bytes) throws IOException
    {
        return Files.write(dir.resolve(name), bytes);
    }

    private static byte[] randomBytes(final Random random, final int length)
    {
        final byte[] bytes = new byte[length];
        random.nextBytes(bytes);
        return bytes;
    }
}
