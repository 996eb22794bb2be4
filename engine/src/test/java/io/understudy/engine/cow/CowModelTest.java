package io.understudy.engine.cow;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.overlay.OverlayCommit;
import io.understudy.engine.overlay.OverlayDevice;
import io.understudy.engine.overlay.OverlayStorage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The secondary's whole graph: forwarded writes through a COW filter into the disk S with the hidden overlay H
 * as target, SVM I/O on the active overlay A -> H -> S, checkpoints (make A empty, new COW epoch) and a
 * failover commit, in long random sequences. Checked byte for byte against the invariants of the
 * replication spec as a model: S = newest forwarded data (INV-S); SVM view = A where the SVM wrote, else the
 * checkpoint contents (INV-SVM, INV-ISO); one copy per COW cluster per epoch; after commit S = SVM view.
 */
class CowModelTest
{
    private static final int DISK_SIZE = 4 << 20;
    private static final int MAX_IO = 160 * 1024;
    private static final int STEPS = 1200;

    @TempDir
    Path dir;

    /** Overlay files on another file system than S (tmpfs against /tmp), where the kernel cannot copy S to H. */
    private Path elsewhere;

    @AfterEach
    void removeElsewhere() throws IOException
    {
        if (elsewhere != null)
        {
            try (Stream<Path> files = Files.list(elsewhere))
            {
                for (final Path file : files.toList())
                {
                    Files.delete(file);
                }
            }
            Files.delete(elsewhere);
        }
    }

    /**
     * Storage kinds: {@code memory}; {@code file}, beside S, where the kernel copies originals from S into H
     * ({@link CowCopy#KERNEL}, copy_file_range); {@code file-elsewhere}, where the kernel is asked to but cannot
     * and the COW filter falls back to copying through memory.
     */
    @ParameterizedTest(name = "storage={0} workers={1} cow={2} A={3} H={4}")
    @CsvSource({
        "memory,         0, 65536, 4096, 65536",
        "file,           2, 65536, 16384, 4096",
        "memory,         2, 16384, 65536, 65536",
        "file,           0, 16384, 4096, 16384",
        "file-elsewhere, 0, 65536, 16384, 4096",
    })
    void randomReplicationTrafficKeepsInvariants(
        final String storageKind, final int workers, final int cowCluster, final int activeCluster,
        final int hiddenCluster) throws IOException
    {
        final long seed = System.nanoTime();
        final SplittableRandom random = new SplittableRandom(seed);
        final byte[] disk = new byte[DISK_SIZE];
        random.nextBytes(disk);
        final Path diskPath = dir.resolve("disk");
        Files.write(diskPath, disk);
        byte[] checkpoint = disk.clone();
        final byte[] active = new byte[DISK_SIZE];
        final BitSet activeAllocated = new BitSet();
        final BitSet cowTouched = new BitSet();

        try (IoEngine engine = new ThreadPoolIoEngine(workers);
            Arena arena = Arena.ofShared())
        {
            final MemorySegment buffer = arena.allocate(MAX_IO, 4096);
            final BlockDevice s = engine.open(diskPath, FileOptions.readWrite());
            final OverlayDevice h = new OverlayDevice(s, storage(storageKind, engine, "hidden"), hiddenCluster);
            final OverlayDevice a = new OverlayDevice(h, storage(storageKind, engine, "active"), activeCluster);
            final CowFilter cow = new CowFilter(s, h, h::makeEmpty, cowCluster, CowFilter.DEFAULT_QUEUE_DEPTH,
                CowFilter.DEFAULT_COPY_BYTES, "memory".equals(storageKind) ? CowCopy.MEMORY : CowCopy.KERNEL);
            final OverlayCommit commit = new OverlayCommit(a, arena.allocate(1 << 20, 4096), (done, total) ->
            {
            });
            try
            {
                long copiesAtEpochStart = 0;
                for (int step = 0; step < STEPS; step++)
                {
                    final String where = "seed " + seed + " step " + step;
                    final int choice = random.nextInt(100);
                    final int offset = random.nextInt(DISK_SIZE);
                    final int length = 1 + random.nextInt(Math.min(MAX_IO, DISK_SIZE - offset));
                    if (choice < 35)
                    {
                        final byte[] data = bytes(random, length);
                        assertEquals(length, SyncIo.write(cow, offset, buffer, data), where);
                        System.arraycopy(data, 0, disk, offset, length);
                        cowTouched.set(offset / cowCluster, (offset + length - 1) / cowCluster + 1);
                        assertEquals(copiesAtEpochStart + cowTouched.cardinality(), cow.copies(),
                            where + ": one copy per COW cluster per epoch");
                    }
                    else if (choice < 40)
                    {
                        assertEquals(0, SyncIo.run((c, k) -> cow.writeZeroes(offset, length, 0, c, k)), where);
                        Arrays.fill(disk, offset, offset + length, (byte)0);
                        cowTouched.set(offset / cowCluster, (offset + length - 1) / cowCluster + 1);
                    }
                    else if (choice < 60)
                    {
                        final byte[] data = bytes(random, length);
                        assertEquals(length, SyncIo.write(a, offset, buffer, data), where);
                        for (int c = offset / activeCluster; c <= (offset + length - 1) / activeCluster; c++)
                        {
                            if (!activeAllocated.get(c))
                            {
                                final int start = c * activeCluster;
                                System.arraycopy(checkpoint, start, active, start, activeCluster);
                                activeAllocated.set(c);
                            }
                        }
                        System.arraycopy(data, 0, active, offset, length);
                    }
                    else if (choice < 85)
                    {
                        final byte[] expected = new byte[length];
                        for (int i = 0; i < length; i++)
                        {
                            final int x = offset + i;
                            expected[i] = activeAllocated.get(x / activeCluster) ? active[x] : checkpoint[x];
                        }
                        assertArrayEquals(expected, SyncIo.read(a, offset, buffer, length), where + " SVM view");
                    }
                    else if (choice < 92)
                    {
                        assertArrayEquals(Arrays.copyOfRange(disk, offset, offset + length),
                            SyncIo.read(cow, offset, buffer, length), where + " S");
                    }
                    else if (choice < 98)
                    {
                        // checkpoint: SVM buffer dropped, COW epoch restarts with H emptied
                        assertEquals(0, SyncIo.run(a::makeEmpty), where);
                        assertEquals(0, cow.newEpoch(TimeUnit.SECONDS.toNanos(5)), where);
                        activeAllocated.clear();
                        cowTouched.clear();
                        checkpoint = disk.clone();
                        copiesAtEpochStart = cow.copies();
                    }
                    else
                    {
                        // failover: commit A and H into S; S then equals the SVM view
                        for (int x = 0; x < DISK_SIZE; x++)
                        {
                            disk[x] = activeAllocated.get(x / activeCluster) ? active[x] : checkpoint[x];
                        }
                        assertEquals(0, SyncIo.run((c, k) ->
                        {
                            commit.start(c, k);
                            return true;
                        }), where);
                        for (int x = 0; x < DISK_SIZE; x += MAX_IO)
                        {
                            final int n = Math.min(MAX_IO, DISK_SIZE - x);
                            assertArrayEquals(Arrays.copyOfRange(disk, x, x + n),
                                SyncIo.read(s, x, buffer, n), where + " S after commit at " + x);
                        }
                        // restart replication from the committed state
                        assertEquals(0, SyncIo.run(a::makeEmpty), where);
                        assertEquals(0, cow.newEpoch(TimeUnit.SECONDS.toNanos(5)), where);
                        activeAllocated.clear();
                        cowTouched.clear();
                        checkpoint = disk.clone();
                        copiesAtEpochStart = cow.copies();
                    }
                }
                assertTrue(cow.copies() > 0, "seed " + seed + ": nothing was copied");
                assertEquals("file".equals(storageKind) ? cow.copies() : 0, cow.offloadedCopies(),
                    "seed " + seed + ": copies the kernel made");
                assertEquals("file".equals(storageKind), cow.copiesOffloaded());
                assertEquals(0, cow.copyFailures());
            }
            finally
            {
                cow.close();
                a.close();
                h.close();
                s.close();
            }
        }
    }

    private OverlayStorage storage(
        final String kind, final IoEngine engine, final String name) throws IOException
    {
        return switch (kind)
        {
            case "memory" -> new MemoryOverlayStorage(DISK_SIZE, 64 * 1024);
            case "file" -> FileOverlayStorage.create(engine, dir.resolve(name), DISK_SIZE, FileOptions.readWrite());
            default -> FileOverlayStorage.create(engine, elsewhere().resolve(name), DISK_SIZE, FileOptions.readWrite());
        };
    }

    private Path elsewhere() throws IOException
    {
        if (elsewhere == null)
        {
            final Path shm = Path.of("/dev/shm");
            Assumptions.assumeTrue(Files.isDirectory(shm) && !Files.getFileStore(shm).equals(Files.getFileStore(dir)),
                "needs /dev/shm on another file system than " + dir);
            elsewhere = Files.createTempDirectory(shm, "understudy-cow-model");
        }
        return elsewhere;
    }

    private static byte[] bytes(final SplittableRandom random, final int length)
    {
        final byte[] data = new byte[length];
        random.nextBytes(data);
        return data;
    }
}
