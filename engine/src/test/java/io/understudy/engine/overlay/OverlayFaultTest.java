package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.DelayedReadDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.device.FaultInjectingDevice.Kind;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Failures inside the overlay's paths, make-empty preconditions, block status and resumable commit. */
class OverlayFaultTest
{
    private static final int SIZE = 1 << 20;
    private static final int CLUSTER = 64 * 1024;

    @TempDir
    Path dir;

    @Test
    void failedCopyUpLeavesTheClusterUnallocatedAndARetryCopiesAgain() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared();
            BlockDevice disk = openDisk(engine, 0x11))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            final byte[] original = filled(SIZE, 0x11);
            final Path storagePath = dir.resolve("storage");
            try (RandomAccessFile raf = new RandomAccessFile(storagePath.toFile(), "rw"))
            {
                raf.setLength(SIZE);
            }
            final FaultInjectingDevice storageFile = new FaultInjectingDevice(
                engine.open(storagePath, FileOptions.readWrite()));
            try (OverlayDevice overlay = new OverlayDevice(disk, new FileOverlayStorage(storageFile), CLUSTER))
            {
                storageFile.failNth(Kind.WRITE, 1, Errno.EIO);
                assertEquals(-Errno.EIO, SyncIo.write(overlay, CLUSTER + 100, buffer, filled(50, 0x22)));
                assertFalse(overlay.isAllocated(CLUSTER));
                assertArrayEquals(original, SyncIo.read(overlay, 0, buffer, SIZE));

                assertEquals(50, SyncIo.write(overlay, CLUSTER + 100, buffer, filled(50, 0x22)));
                final byte[] expected = original.clone();
                Arrays.fill(expected, CLUSTER + 100, CLUSTER + 150, (byte)0x22);
                assertArrayEquals(expected, SyncIo.read(overlay, 0, buffer, SIZE));
                assertArrayEquals(original, SyncIo.read(disk, 0, buffer, SIZE), "backing never written");
            }
        }
    }

    @Test
    void fuaWriteFlushesTheStorageBeforeCompleting() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(0);
            Arena arena = Arena.ofShared();
            BlockDevice disk = openDisk(engine, 0x11))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            final Path storagePath = dir.resolve("storage");
            try (RandomAccessFile raf = new RandomAccessFile(storagePath.toFile(), "rw"))
            {
                raf.setLength(SIZE);
            }
            final FaultInjectingDevice storageFile = new FaultInjectingDevice(
                engine.open(storagePath, FileOptions.readWrite()));
            try (OverlayDevice overlay = new OverlayDevice(disk, new FileOverlayStorage(storageFile), CLUSTER))
            {
                assertEquals(10, SyncIo.write(overlay, 5, buffer, filled(10, 0x22)));
                assertEquals(0, storageFile.count(Kind.FLUSH));
                assertEquals(10, SyncIo.run((c, k) -> overlay.write(5, buffer, 10, BlockDevice.FLAG_FUA, c, k)));
                assertEquals(1, storageFile.count(Kind.FLUSH));
                storageFile.failNth(Kind.FLUSH, 1, Errno.EIO);
                assertEquals(-Errno.EIO, SyncIo.run((c, k) -> overlay.write(5, buffer, 10, BlockDevice.FLAG_FUA, c, k)));
                assertEquals(0, SyncIo.run(overlay::flush));
                storageFile.failNth(Kind.FLUSH, 1, Errno.EIO);
                assertEquals(-Errno.EIO, SyncIo.run(overlay::flush));
            }
        }
    }

    @Test
    void aWriteToADroppedClusterClaimsItUnlessItsHolePunchIsInFlight() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared();
            BlockDevice disk = openDisk(engine, 0x11))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            final byte[] original = filled(SIZE, 0x11);
            final SlowReleaseStorage storage = new SlowReleaseStorage(new MemoryOverlayStorage(SIZE, CLUSTER), 150);
            try (OverlayDevice overlay = releasingAtOnce(disk, storage))
            {
                assertEquals(4 * CLUSTER, SyncIo.write(overlay, 0, buffer, filled(4 * CLUSTER, 0x22)));
                assertEquals(0, SyncIo.run(overlay::makeEmpty));
                assertTrue(overlay.isReleasing());
                assertArrayEquals(original, SyncIo.read(overlay, 0, buffer, SIZE), "reads go through at once");

                // No duty cycle has run, so no punch has started: the write claims its cluster and goes on.
                assertEquals(100, SyncIo.write(overlay, CLUSTER + 10, buffer, filled(100, 0x33)));
                assertEquals(2 * CLUSTER, SyncIo.write(overlay, 2 * CLUSTER, buffer, filled(2 * CLUSTER, 0x55)),
                    "whole clusters are claimed too");
                assertEquals(0, storage.releasedAt, "nothing released yet");

                // The chain punches cluster 0 alone (the others are claimed); a write there waits for that punch.
                overlay.doWork();
                assertEquals(100, SyncIo.write(overlay, 10, buffer, filled(100, 0x44)));
                final long written = System.nanoTime();
                assertTrue(storage.releasedAt > 0 && storage.releasedAt <= written,
                    "the write waited for the punch in flight on its cluster");

                releaseAll(overlay);
                assertEquals(List.of(0L), storage.releasedClusters(), "claimed clusters are not punched");
                final byte[] expected = original.clone();
                Arrays.fill(expected, 10, 110, (byte)0x44);
                Arrays.fill(expected, CLUSTER + 10, CLUSTER + 110, (byte)0x33);
                Arrays.fill(expected, 2 * CLUSTER, 4 * CLUSTER, (byte)0x55);
                assertArrayEquals(expected, SyncIo.read(overlay, 0, buffer, SIZE));
            }
        }
    }

    @Test
    void aReleaseChainGivesBackEveryDroppedClusterOnceIncludingThoseDroppedBehindIt() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared();
            BlockDevice disk = openDisk(engine, 0x11))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            final byte[] original = filled(SIZE, 0x11);
            final SlowReleaseStorage storage = new SlowReleaseStorage(new MemoryOverlayStorage(SIZE, CLUSTER), 50);
            try (OverlayDevice overlay = releasingAtOnce(disk, storage))
            {
                for (final int cluster : new int[]{9, 11, 13})
                {
                    assertEquals(10, SyncIo.write(overlay, (long)cluster * CLUSTER, buffer, filled(10, 0x22)));
                }
                assertEquals(0, SyncIo.run(overlay::makeEmpty));
                overlay.doWork();
                // The chain is busy with cluster 9; these are dropped behind where it goes on from.
                for (final int cluster : new int[]{1, 3})
                {
                    assertEquals(10, SyncIo.write(overlay, (long)cluster * CLUSTER, buffer, filled(10, 0x33)));
                }
                assertEquals(0, SyncIo.run(overlay::makeEmpty));
                releaseAll(overlay);
                assertEquals(List.of(1L, 3L, 9L, 11L, 13L), storage.releasedClusters());
                assertArrayEquals(original, SyncIo.read(overlay, 0, buffer, SIZE));
            }
        }
    }

    /** Runs the overlay's duty cycle until its release chain has given back everything dropped (10 s at most). */
    private static void releaseAll(final OverlayDevice overlay) throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (overlay.isReleasing() && System.nanoTime() < deadline)
        {
            overlay.doWork();
            Thread.sleep(5);
        }
        assertFalse(overlay.isReleasing());
    }

    /** @return an overlay whose release starts at the first duty cycle after a make-empty. */
    private static OverlayDevice releasingAtOnce(final BlockDevice disk, final OverlayStorage storage)
    {
        return new OverlayDevice(disk, storage, CLUSTER, OverlayDevice.DEFAULT_QUEUE_DEPTH, 0);
    }

    /** Storage whose release completes late, on a timer thread. */
    private static final class SlowReleaseStorage implements OverlayStorage
    {
        private final OverlayStorage storage;
        private final long delayMillis;
        volatile long releasedAt;
        private final List<Long> released = new ArrayList<>();
        private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();

        SlowReleaseStorage(final OverlayStorage storage, final long delayMillis)
        {
            this.storage = storage;
            this.delayMillis = delayMillis;
        }

        @Override
        public long size()
        {
            return storage.size();
        }

        @Override
        public int alignment()
        {
            return storage.alignment();
        }

        @Override
        public boolean read(
            final long offset, final MemorySegment buffer, final int length,
            final IoCompletion completion, final long cookie)
        {
            return storage.read(offset, buffer, length, completion, cookie);
        }

        @Override
        public boolean write(
            final long offset, final MemorySegment buffer, final int length,
            final IoCompletion completion, final long cookie)
        {
            return storage.write(offset, buffer, length, completion, cookie);
        }

        @Override
        public boolean release(
            final long offset, final long length, final IoCompletion completion,
            final long cookie)
        {
            synchronized (released)
            {
                for (long cluster = offset / CLUSTER; cluster < (offset + length) / CLUSTER; cluster++)
                {
                    released.add(cluster);
                }
            }
            timer.schedule(() ->
            {
                releasedAt = System.nanoTime();
                storage.release(offset, length, completion, cookie);
            }, delayMillis, TimeUnit.MILLISECONDS);
            return true;
        }

        @Override
        public boolean flush(final IoCompletion completion, final long cookie)
        {
            return storage.flush(completion, cookie);
        }

        /** @return every cluster given to {@link #release}, sorted: a cluster released twice shows twice. */
        List<Long> releasedClusters()
        {
            synchronized (released)
            {
                return released.stream().sorted().toList();
            }
        }

        @Override
        public void close()
        {
            timer.shutdown();
            storage.close();
        }
    }

    @Test
    void makeEmptyRefusesWhileARequestIsInFlight() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared())
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            disk(0x11);
            final BlockDevice disk = engine.open(dir.resolve("disk"), FileOptions.readWrite());
            final DelayedReadDevice slow = new DelayedReadDevice(disk, 200_000, 200_000);
            try (OverlayDevice overlay = new OverlayDevice(slow, new MemoryOverlayStorage(SIZE), CLUSTER))
            {
                assertEquals(10, SyncIo.write(overlay, 0, buffer, filled(10, 0x22)));
                final CountDownLatch done = new CountDownLatch(1);
                assertTrue(overlay.read(CLUSTER, buffer, 4096, (c, r) -> done.countDown(), 0));
                assertEquals(-Errno.EBUSY, SyncIo.run(overlay::makeEmpty));
                assertTrue(overlay.isAllocated(0), "nothing dropped");
                assertTrue(done.await(5, TimeUnit.SECONDS));
                assertEquals(0, SyncIo.run(overlay::makeEmpty));
                assertFalse(overlay.isAllocated(0));
                assertEquals(0x11, SyncIo.read(overlay, 0, buffer, 1)[0]);
            }
            finally
            {
                slow.close();
                disk.close();
            }
        }
    }

    @Test
    void makeEmptyGivesMemoryBackAndBlockStatusFollowsTheChain() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(0);
            Arena arena = Arena.ofShared();
            BlockDevice disk = openDisk(engine, 0x11))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            final MemoryOverlayStorage memory = new MemoryOverlayStorage(SIZE, CLUSTER);
            try (OverlayDevice overlay = releasingAtOnce(disk, memory))
            {
                assertEquals(CLUSTER, SyncIo.write(overlay, 2 * CLUSTER, buffer, filled(CLUSTER, 0x22)));
                assertEquals(CLUSTER, memory.allocatedBytes());
                final List<long[]> extents = new ArrayList<>();
                final long described = overlay.blockStatus(CLUSTER, 3 * CLUSTER, (length, flags) ->
                {
                    extents.add(new long[]{length, flags});
                    return true;
                });
                assertEquals(3 * CLUSTER, described);
                // the disk file is fully allocated data, so the only distinction is reported lengths
                long total = 0;
                for (final long[] extent : extents)
                {
                    total += extent[0];
                    assertEquals(0, extent[1] & ExtentSink.HOLE);
                }
                assertEquals(3 * CLUSTER, total);
                assertEquals(0, SyncIo.run(overlay::makeEmpty));
                assertEquals(CLUSTER, memory.allocatedBytes(), "make-empty leaves the release to the duty cycle");
                overlay.doWork();
                assertEquals(0, memory.allocatedBytes(), "chunk freed");
                assertFalse(overlay.isReleasing());
            }
        }
    }

    @Test
    void theReleaseStartsOnlyOnceTheReleaseDelayIsOver() throws Exception
    {
        final long delayNanos = TimeUnit.MILLISECONDS.toNanos(300);
        try (IoEngine engine = new ThreadPoolIoEngine(0);
            Arena arena = Arena.ofShared();
            BlockDevice disk = openDisk(engine, 0x11))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            final MemoryOverlayStorage memory = new MemoryOverlayStorage(SIZE, CLUSTER);
            try (OverlayDevice overlay = new OverlayDevice(disk, memory, CLUSTER, OverlayDevice.DEFAULT_QUEUE_DEPTH,
                delayNanos))
            {
                assertEquals(2 * CLUSTER, SyncIo.write(overlay, 0, buffer, filled(2 * CLUSTER, 0x22)));
                final long dropped = System.nanoTime();
                assertEquals(0, SyncIo.run(overlay::makeEmpty));
                overlay.doWork();
                if (System.nanoTime() - dropped < delayNanos)
                {
                    assertEquals(2 * CLUSTER, memory.allocatedBytes(), "nothing given back before the delay");
                    assertTrue(overlay.isReleasing());
                }
                // A write meanwhile claims its cluster: that one is never given back.
                assertEquals(CLUSTER, SyncIo.write(overlay, CLUSTER, buffer, filled(CLUSTER, 0x33)));
                Thread.sleep(TimeUnit.NANOSECONDS.toMillis(delayNanos) + 50);
                overlay.doWork();
                assertFalse(overlay.isReleasing());
                assertEquals(CLUSTER, memory.allocatedBytes(), "the unclaimed cluster was given back");
            }
        }
    }

    @Test
    void interruptedCommitIsRunAgainToTheSameResult() throws Exception
    {
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared())
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            disk(0x11);
            final FaultInjectingDevice disk = new FaultInjectingDevice(
                engine.open(dir.resolve("disk"), FileOptions.readWrite()));
            final OverlayDevice hidden = new OverlayDevice(disk, new MemoryOverlayStorage(SIZE), CLUSTER);
            final OverlayDevice active = new OverlayDevice(hidden, new MemoryOverlayStorage(SIZE), 4096);
            try
            {
                // H holds 0x22 in clusters 1..3 (direct writes), A holds 0x33 over part of cluster 2 and 5.
                assertEquals(3 * CLUSTER, SyncIo.write(hidden, CLUSTER, buffer, filled(3 * CLUSTER, 0x22)));
                assertEquals(100, SyncIo.write(active, 2 * CLUSTER + 10, buffer, filled(100, 0x33)));
                assertEquals(100, SyncIo.write(active, 5 * CLUSTER, buffer, filled(100, 0x33)));
                final byte[] view = SyncIo.read(active, 0, buffer, SIZE);

                final AtomicInteger calls = new AtomicInteger();
                final long[] last = new long[2];
                final OverlayCommit commit = new OverlayCommit(active, arena.allocate(1 << 20, 4096), (done, total) ->
                {
                    calls.incrementAndGet();
                    last[0] = done;
                    last[1] = total;
                });
                assertEquals(3L * CLUSTER + 4096, commit.pendingBytes());
                disk.failNth(Kind.WRITE, 2, Errno.EIO);
                assertEquals(-Errno.EIO, SyncIo.run((c, k) ->
                {
                    commit.start(c, k);
                    return true;
                }));
                calls.set(0);
                assertEquals(0, SyncIo.run((c, k) ->
                {
                    commit.start(c, k);
                    return true;
                }));
                assertEquals(3L * CLUSTER + 4096, last[0]);
                assertEquals(last[0], last[1]);
                assertTrue(calls.get() >= 2);
                assertArrayEquals(view, SyncIo.read(disk, 0, buffer, SIZE), "S = SVM view, top layer winning");
                assertEquals(1, disk.count(Kind.FLUSH));
            }
            finally
            {
                active.close();
                hidden.close();
                disk.close();
            }
        }
    }

    private byte[] disk(final int value) throws Exception
    {
        final byte[] bytes = filled(SIZE, value);
        Files.write(dir.resolve("disk"), bytes);
        return bytes;
    }

    /** @return the backing disk, a file of {@code SIZE} bytes of {@code value}, opened read-write. */
    private BlockDevice openDisk(final IoEngine engine, final int value) throws Exception
    {
        disk(value);
        return engine.open(dir.resolve("disk"), FileOptions.readWrite());
    }

    private static byte[] filled(final int length, final int value)
    {
        final byte[] data = new byte[length];
        Arrays.fill(data, (byte)value);
        return data;
    }
}
