package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Writers race on the same unallocated clusters, each into its own slice (partial writes, so each one wants
 * to copy the cluster up). A copy-up that is not serialised per cluster writes stale backing bytes over a
 * neighbour's completed write; here every slice must end up with its writer's bytes, and the untouched rest
 * with the backing's. The same writers also race the release chain of a make-empty, claiming the dropped
 * clusters it is punching: a punch that lands on a claimed cluster would turn written bytes into zeroes.
 */
class OverlayConcurrencyTest
{
    private static final int CLUSTER = 64 * 1024;
    private static final int CLUSTERS = 48;
    private static final int WRITERS = 4;
    private static final int SLICE = 4096;
    private static final int EPOCHS = 30;

    @TempDir
    Path dir;

    @Test
    void racingPartialWritesIntoOneClusterLoseNothing() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared();
            BlockDevice disk = engine.open(backingDisk(), FileOptions.readWrite());
            OverlayDevice overlay = overlayOver(engine, disk))
        {
            final boolean[][] wrote = new boolean[WRITERS][CLUSTERS];
            for (final boolean[] clusters : wrote)
            {
                Arrays.fill(clusters, true);
            }
            writeConcurrently(arena, overlay, wrote, (byte)0x40, 0);
            assertClusters(overlay, arena.allocate(CLUSTER, 4096), wrote, (byte)0x40, "");
            assertEquals((long)CLUSTER * CLUSTERS, overlay.allocatedBytes());
        }
    }

    @Test
    void writesClaimingDroppedClustersWhileTheReleaseChainPunchesLoseNothing() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared();
            BlockDevice disk = engine.open(backingDisk(), FileOptions.readWrite());
            OverlayDevice overlay = overlayOver(engine, disk))
        {
            final AtomicBoolean running = new AtomicBoolean(true);
            final Thread duty = new Thread(() ->
            {
                while (running.get())
                {
                    overlay.doWork();
                    LockSupport.parkNanos(10_000);
                }
            }, "duty");
            duty.start();
            try
            {
                final Random random = new Random(42);
                final MemorySegment readBuffer = arena.allocate(CLUSTER, 4096);
                for (int epoch = 1; epoch <= EPOCHS; epoch++)
                {
                    final boolean[][] wrote = new boolean[WRITERS][CLUSTERS];
                    for (final boolean[] clusters : wrote)
                    {
                        for (int c = 0; c < CLUSTERS; c++)
                        {
                            clusters[c] = random.nextInt(3) > 0;
                        }
                    }
                    final byte fill = (byte)(epoch * WRITERS);
                    writeConcurrently(arena, overlay, wrote, fill, random.nextInt(CLUSTERS));
                    awaitReleased(overlay);
                    assertClusters(overlay, readBuffer, wrote, fill, "epoch " + epoch + " ");
                    assertEquals(0, SyncIo.run(overlay::makeEmpty));
                }
                awaitReleased(overlay);
                assertEquals(0, overlay.allocatedBytes());
            }
            finally
            {
                running.set(false);
                duty.join();
            }
        }
    }

    /** @return a backing file of {@value #CLUSTERS} clusters of 0x11. */
    private Path backingDisk() throws IOException
    {
        final byte[] initial = new byte[CLUSTER * CLUSTERS];
        Arrays.fill(initial, (byte)0x11);
        return Files.write(dir.resolve("disk"), initial);
    }

    /** @return an overlay over {@code disk} whose storage is a file, so that releases punch real holes at once. */
    private OverlayDevice overlayOver(final IoEngine engine, final BlockDevice disk) throws IOException
    {
        return new OverlayDevice(disk, FileOverlayStorage.create(engine, dir.resolve("overlay"),
            (long)CLUSTER * CLUSTERS, FileOptions.readWrite()), CLUSTER, 16, 0);
    }

    /**
     * Each writer writes its slice (slot {@code 2 * writer} of {@value #SLICE} bytes, of {@code fill + writer}) of
     * the clusters {@code wrote} marks, all starting together at cluster {@code first}.
     */
    private static void writeConcurrently(
        final Arena arena, final OverlayDevice overlay, final boolean[][] wrote, final byte fill, final int first)
        throws InterruptedException
    {
        final AtomicReference<String> failure = new AtomicReference<>();
        final CountDownLatch start = new CountDownLatch(1);
        final Thread[] writers = new Thread[WRITERS];
        for (int w = 0; w < WRITERS; w++)
        {
            final int writer = w;
            final MemorySegment buffer = arena.allocate(SLICE, 4096);
            buffer.fill((byte)(fill + writer));
            writers[w] = new Thread(() ->
            {
                try
                {
                    start.await();
                    for (int i = 0; i < CLUSTERS; i++)
                    {
                        final int c = (first + i) % CLUSTERS;
                        if (!wrote[writer][c])
                        {
                            continue;
                        }
                        final long offset = (long)c * CLUSTER + (long)writer * 2 * SLICE;
                        final int rc = SyncIo.run((k, cookie) -> overlay.write(offset, buffer, SLICE, 0, k, cookie));
                        if (rc != SLICE)
                        {
                            failure.compareAndSet(null, "write at " + offset + " returned " + rc);
                        }
                    }
                }
                catch (final Throwable t)
                {
                    failure.compareAndSet(null, t.toString());
                }
            });
            writers[w].start();
        }
        start.countDown();
        for (final Thread writer : writers)
        {
            writer.join();
        }
        assertNull(failure.get());
    }

    /** Every cluster reads as the writers' slices where {@code wrote} marks them, and as the disk's 0x11 elsewhere. */
    private static void assertClusters(
        final OverlayDevice overlay, final MemorySegment readBuffer, final boolean[][] wrote, final byte fill,
        final String when)
    {
        for (int c = 0; c < CLUSTERS; c++)
        {
            final byte[] cluster = SyncIo.read(overlay, (long)c * CLUSTER, readBuffer, CLUSTER);
            for (int i = 0; i < CLUSTER; i++)
            {
                final int slot = i / SLICE;
                final int writer = slot / 2;
                final boolean written = slot % 2 == 0 && writer < WRITERS && wrote[writer][c];
                final int expected = written ? (fill + writer) & 0xFF : 0x11;
                if (cluster[i] != (byte)expected)
                {
                    assertEquals(expected, cluster[i] & 0xFF, when + "cluster " + c + " byte " + i);
                }
            }
        }
    }

    /** Waits until the duty thread's release chain gave back everything dropped so far. */
    private static void awaitReleased(final OverlayDevice overlay) throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (overlay.isReleasing())
        {
            assertTrue(System.nanoTime() < deadline, "the release chain never finished");
            Thread.sleep(1);
        }
    }
}
