package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * Writers race on the same unallocated clusters, each into its own slice (partial writes, so each one wants
 * to copy the cluster up). A copy-up that is not serialised per cluster writes stale backing bytes over a
 * neighbour's completed write; here every slice must end up with its writer's bytes, and the untouched rest
 * with the backing's.
 */
class OverlayConcurrencyTest
{
    private static final int CLUSTER = 64 * 1024;
    private static final int CLUSTERS = 48;
    private static final int WRITERS = 4;
    private static final int SLICE = 4096;

    @TempDir
    Path dir;

    @Test
    void racingPartialWritesIntoOneClusterLoseNothing() throws Exception
    {
        final byte[] initial = new byte[CLUSTER * CLUSTERS];
        Arrays.fill(initial, (byte)0x11);
        final Path diskPath = dir.resolve("disk");
        Files.write(diskPath, initial);
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared())
        {
            final BlockDevice disk = engine.open(diskPath, FileOptions.readWrite());
            final OverlayDevice overlay = new OverlayDevice(disk,
                FileOverlayStorage.create(engine, dir.resolve("active"), initial.length, FileOptions.readWrite()),
                CLUSTER, 16);
            try
            {
                final AtomicReference<String> failure = new AtomicReference<>();
                final CountDownLatch start = new CountDownLatch(1);
                final Thread[] writers = new Thread[WRITERS];
                for (int w = 0; w < WRITERS; w++)
                {
                    final int writer = w;
                    final MemorySegment buffer = arena.allocate(SLICE, 4096);
                    buffer.fill((byte)(0x40 + writer));
                    writers[w] = new Thread(() ->
                    {
                        try
                        {
                            start.await();
                            for (int c = 0; c < CLUSTERS; c++)
                            {
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
                final MemorySegment readBuffer = arena.allocate(CLUSTER, 4096);
                for (int c = 0; c < CLUSTERS; c++)
                {
                    final byte[] cluster = SyncIo.read(overlay, (long)c * CLUSTER, readBuffer, CLUSTER);
                    for (int i = 0; i < CLUSTER; i++)
                    {
                        final int slot = i / SLICE;
                        final int expected = slot % 2 == 0 && slot / 2 < WRITERS ? 0x40 + slot / 2 : 0x11;
                        if (cluster[i] != (byte)expected)
                        {
                            assertEquals(expected, cluster[i] & 0xFF, "cluster " + c + " byte " + i);
                        }
                    }
                }
                assertEquals((long)CLUSTER * CLUSTERS, overlay.allocatedBytes());
            }
            finally
            {
                overlay.close();
                disk.close();
            }
        }
    }
}
