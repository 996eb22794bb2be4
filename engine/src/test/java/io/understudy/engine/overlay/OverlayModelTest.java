package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Long random sequences of operations on a chain active -> hidden -> disk (writes of any offset and length,
 * sub-cluster too, write-zeroes, direct writes into the hidden layer and the disk as the COW path and
 * forwarded writes do, reads of every layer, make-empty, commit), each checked byte for byte against a
 * trivial in-memory model of the chain. The seed is in every failure message.
 */
class OverlayModelTest
{
    private static final int DISK_SIZE = (4 << 20) + 12 * 1024; // last clusters partial for 16/64 KiB
    private static final int MAX_IO = 200 * 1024;
    private static final int STEPS = 1500;
    /** Every cluster size is a multiple of this, so a layer's choice is constant within such a block. */
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "storage={0} workers={1} clusters A={2} H={3}")
    @CsvSource({
        "memory, 0, 4096, 16384",
        "file,   0, 65536, 4096",
        "memory, 2, 16384, 65536",
        "file,   2, 4096, 4096",
    })
    void randomOperationsMatchModel(
        final String storageKind, final int workers, final int activeCluster, final int hiddenCluster) throws IOException
    {
        final long seed = System.nanoTime();
        final SplittableRandom random = new SplittableRandom(seed);
        final byte[] initial = new byte[DISK_SIZE];
        random.nextBytes(initial);
        final Path diskPath = dir.resolve("disk");
        Files.write(diskPath, initial);
        final Model model = new Model(initial, activeCluster, hiddenCluster);

        try (IoEngine engine = new ThreadPoolIoEngine(workers);
            Arena arena = Arena.ofShared())
        {
            final MemorySegment buffer = arena.allocate(MAX_IO, 4096);
            final MemorySegment commitBuffer = arena.allocate(1 << 20, 4096);
            final BlockDevice disk = engine.open(diskPath, FileOptions.readWrite());
            final OverlayDevice hidden = new OverlayDevice(disk, storage(storageKind, engine, "hidden"), hiddenCluster);
            final OverlayDevice active = new OverlayDevice(hidden, storage(storageKind, engine, "active"), activeCluster);
            final BlockDevice[] devices = {active, hidden, disk};
            final long[] progress = new long[2];
            final OverlayCommit commit = new OverlayCommit(active, commitBuffer, (done, total) ->
            {
                progress[0] = done;
                progress[1] = total;
            });
            try
            {
                for (int step = 0; step < STEPS; step++)
                {
                    final String where = "seed " + seed + " step " + step;
                    final int choice = random.nextInt(100);
                    final int offset = random.nextInt(DISK_SIZE);
                    final int length = 1 + random.nextInt(Math.min(MAX_IO, DISK_SIZE - offset));
                    if (choice < 30)
                    {
                        final byte[] data = bytes(random, length);
                        assertEquals(length, SyncIo.write(active, offset, buffer, data), where);
                        model.write(0, offset, data);
                    }
                    else if (choice < 35)
                    {
                        assertEquals(0, SyncIo.run((c, k) -> active.writeZeroes(offset, length, 0, c, k)), where);
                        model.write(0, offset, new byte[length]);
                    }
                    else if (choice < 40)
                    {
                        final byte[] data = bytes(random, length);
                        assertEquals(length, SyncIo.write(hidden, offset, buffer, data), where);
                        model.write(1, offset, data);
                    }
                    else if (choice < 45)
                    {
                        final byte[] data = bytes(random, length);
                        assertEquals(length, SyncIo.write(disk, offset, buffer, data), where);
                        model.write(2, offset, data);
                    }
                    else if (choice < 80)
                    {
                        final int level = random.nextInt(3);
                        assertArrayEquals(model.view(level, offset, length),
                            SyncIo.read(devices[level], offset, buffer, length), where + " read level " + level +
                            " [" + offset + ", +" + length + ")");
                    }
                    else if (choice < 85)
                    {
                        assertEquals(0, SyncIo.run(active::makeEmpty), where);
                        model.makeEmpty(0);
                    }
                    else if (choice < 90)
                    {
                        assertEquals(0, SyncIo.run(hidden::makeEmpty), where);
                        model.makeEmpty(1);
                    }
                    else if (choice < 93)
                    {
                        final long expectedTotal = model.heldBytes();
                        assertEquals(expectedTotal, commit.pendingBytes(), where);
                        progress[0] = -1;
                        assertEquals(0, SyncIo.run((c, k) ->
                        {
                            commit.start(c, k);
                            return true;
                        }), where);
                        model.commit();
                        if (expectedTotal > 0)
                        {
                            assertEquals(expectedTotal, progress[0], where);
                            assertEquals(expectedTotal, progress[1], where);
                        }
                    }
                    else if (choice < 95)
                    {
                        assertEquals(0, SyncIo.run(active::flush), where);
                    }
                    else
                    {
                        for (int level = 0; level < 2; level++)
                        {
                            final OverlayDevice overlay = (OverlayDevice)devices[level];
                            final BitSet expected = model.allocated[level];
                            for (int c = 0; c < model.clusters(level); c++)
                            {
                                assertEquals(expected.get(c), overlay.isAllocated((long)c * model.clusterSize[level]),
                                    where + " allocation of cluster " + c + " at level " + level);
                            }
                        }
                    }
                }
                for (int level = 0; level < 3; level++)
                {
                    for (int offset = 0; offset < DISK_SIZE; offset += MAX_IO)
                    {
                        final int length = Math.min(MAX_IO, DISK_SIZE - offset);
                        assertArrayEquals(model.view(level, offset, length),
                            SyncIo.read(devices[level], offset, buffer, length), "seed " + seed + " final level " + level);
                    }
                }
            }
            finally
            {
                active.close();
                hidden.close();
                disk.close();
            }
        }
    }

    private OverlayStorage storage(final String kind, final IoEngine engine, final String name) throws IOException
    {
        return "memory".equals(kind) ? new MemoryOverlayStorage(DISK_SIZE, 64 * 1024) :
            FileOverlayStorage.create(engine, dir.resolve(name), DISK_SIZE, FileOptions.readWrite());
    }

    private static byte[] bytes(final SplittableRandom random, final int length)
    {
        final byte[] data = new byte[length];
        random.nextBytes(data);
        return data;
    }

    /** The chain as arrays: level 0 = active, 1 = hidden, 2 = disk. */
    private static final class Model
    {
        final byte[][] data = new byte[3][];
        final BitSet[] allocated = {new BitSet(), new BitSet()};
        final int[] clusterSize;

        Model(final byte[] disk, final int activeCluster, final int hiddenCluster)
        {
            data[2] = disk.clone();
            data[1] = new byte[disk.length];
            data[0] = new byte[disk.length];
            clusterSize = new int[]{activeCluster, hiddenCluster};
        }

        int clusters(final int level)
        {
            return (DISK_SIZE + clusterSize[level] - 1) / clusterSize[level];
        }

        /** @return the level whose data is visible at {@code x} through {@code level} (constant per 4 KiB). */
        int source(final int level, final int x)
        {
            int l = level;
            while (l < 2 && !allocated[l].get(x / clusterSize[l]))
            {
                l++;
            }
            return l;
        }

        byte[] view(final int level, final int offset, final int length)
        {
            final byte[] out = new byte[length];
            int i = 0;
            while (i < length)
            {
                final int x = offset + i;
                final int n = Math.min(length - i, BLOCK - (x % BLOCK));
                System.arraycopy(data[source(level, x)], x, out, i, n);
                i += n;
            }
            return out;
        }

        void write(final int level, final int offset, final byte[] bytes)
        {
            if (level < 2)
            {
                final int size = clusterSize[level];
                for (int c = offset / size; c <= (offset + bytes.length - 1) / size; c++)
                {
                    if (!allocated[level].get(c))
                    {
                        // copy-up: the cluster takes the content visible below it
                        final int start = c * size;
                        final int end = Math.min(DISK_SIZE, start + size);
                        System.arraycopy(view(level + 1, start, end - start), 0, data[level], start, end - start);
                        allocated[level].set(c);
                    }
                }
            }
            System.arraycopy(bytes, 0, data[level], offset, bytes.length);
        }

        void makeEmpty(final int level)
        {
            allocated[level].clear();
            Arrays.fill(data[level], (byte)0);
        }

        long heldBytes()
        {
            long bytes = 0;
            for (int x = 0; x < DISK_SIZE; x += BLOCK)
            {
                bytes += held(x) ? Math.min(BLOCK, DISK_SIZE - x) : 0;
            }
            return bytes;
        }

        boolean held(final int x)
        {
            return allocated[0].get(x / clusterSize[0]) || allocated[1].get(x / clusterSize[1]);
        }

        void commit()
        {
            final byte[] top = view(0, 0, DISK_SIZE);
            for (int x = 0; x < DISK_SIZE; x += BLOCK)
            {
                if (held(x))
                {
                    System.arraycopy(top, x, data[2], x, Math.min(BLOCK, DISK_SIZE - x));
                }
            }
        }
    }
}
