package io.understudy.engine.cow;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.DelayedReadDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.device.FaultInjectingDevice.Kind;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.overlay.OverlayDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Copy failures, forward failures and epoch quiescing with a deadline. */
class CowFaultTest
{
    private static final int SIZE = 1 << 20;
    private static final int CLUSTER = 64 * 1024;

    @TempDir
    Path dir;

    private IoEngine engine;
    private Arena arena;
    private BlockDevice s;
    private OverlayDevice h;
    private MemorySegment buffer;
    private byte[] original;

    @BeforeEach
    void setUp() throws Exception
    {
        original = new byte[SIZE];
        Arrays.fill(original, (byte)0x11);
        Files.write(dir.resolve("disk"), original);
        engine = new ThreadPoolIoEngine(2);
        arena = Arena.ofShared();
        buffer = arena.allocate(SIZE, 4096);
        s = engine.open(dir.resolve("disk"), FileOptions.readWrite());
        h = new OverlayDevice(s, new MemoryOverlayStorage(SIZE), CLUSTER);
    }

    @AfterEach
    void tearDown()
    {
        h.close();
        s.close();
        engine.close();
        arena.close();
    }

    @Test
    void failedCopyReadFailsTheWriteAndAppliesNothing()
    {
        final FaultInjectingDevice faulty = new FaultInjectingDevice(s);
        try (CowFilter cow = new CowFilter(faulty, h, h::makeEmpty, CLUSTER))
        {
            faulty.failNth(Kind.READ, 1, Errno.EIO);
            assertEquals(-Errno.EIO, SyncIo.write(cow, CLUSTER + 512, buffer, filled(1000, 0x22)));
            assertEquals(0, faulty.count(Kind.WRITE), "nothing forwarded");
            assertArrayEquals(original, SyncIo.read(s, 0, buffer, SIZE));
            assertFalse(cow.isCopied(CLUSTER));
            assertFalse(h.isAllocated(CLUSTER));
            assertEquals(1, cow.copyFailures());
            assertEquals(0, cow.copies());

            // the cluster stays eligible: the retry copies it once and goes through
            assertEquals(1000, SyncIo.write(cow, CLUSTER + 512, buffer, filled(1000, 0x22)));
            assertEquals(1, cow.copies());
            assertArrayEquals(original, SyncIo.read(h, 0, buffer, SIZE), "H view = checkpoint");
            assertEquals(0x22, SyncIo.read(s, CLUSTER + 512, buffer, 1)[0]);
        }
    }

    @Test
    void failedCopyWriteFailsTheWriteAndLeavesTheTargetUnallocated()
    {
        final FaultInjectingDevice target = new FaultInjectingDevice(h);
        try (CowFilter cow = new CowFilter(s, target, h::makeEmpty, CLUSTER))
        {
            target.failNth(Kind.WRITE, 1, Errno.ENOSPC);
            // spans clusters 2 and 3: one batched copy, which fails
            assertEquals(-Errno.ENOSPC, SyncIo.write(cow, 3 * CLUSTER - 100, buffer, filled(200, 0x33)));
            assertArrayEquals(original, SyncIo.read(s, 0, buffer, SIZE));
            assertFalse(h.isAllocated(2L * CLUSTER));
            assertFalse(cow.isCopied(2L * CLUSTER));
            assertFalse(cow.isCopied(3L * CLUSTER));

            assertEquals(200, SyncIo.write(cow, 3 * CLUSTER - 100, buffer, filled(200, 0x33)));
            assertEquals(2, cow.copies());
            assertTrue(h.isAllocated(2L * CLUSTER) && h.isAllocated(3L * CLUSTER));
            assertArrayEquals(original, SyncIo.read(h, 0, buffer, SIZE));
        }
    }

    @Test
    void failedForwardKeepsTheCopyAndTheSvmViewUnchanged()
    {
        final FaultInjectingDevice faulty = new FaultInjectingDevice(s);
        try (CowFilter cow = new CowFilter(faulty, h, h::makeEmpty, CLUSTER))
        {
            faulty.failNth(Kind.WRITE, 1, Errno.EIO);
            assertEquals(-Errno.EIO, SyncIo.write(cow, 0, buffer, filled(CLUSTER, 0x44)));
            assertTrue(cow.isCopied(0));
            assertArrayEquals(original, SyncIo.read(s, 0, buffer, SIZE));
            assertArrayEquals(original, SyncIo.read(h, 0, buffer, SIZE));
        }
    }

    @Test
    void newEpochTimesOutWhileAWriteIsInFlightAndRefusesNewWritesMeanwhile() throws Exception
    {
        // Copy reads take 2 s, so a forwarded write stays in flight that long: past the checkpoint's deadline of
        // 500 ms even if the checkpoint thread starts 1.5 s late on a loaded machine. The gate stays closed for
        // those 500 ms, long enough for this thread to see it closed and try a write.
        final DelayedReadDevice slow = new DelayedReadDevice(s, 2_000_000, 2_000_000);
        try (CowFilter cow = new CowFilter(slow, h, h::makeEmpty, CLUSTER))
        {
            final CountDownLatch done = new CountDownLatch(1);
            final AtomicInteger result = new AtomicInteger(1);
            final IoCompletion completion = (cookie, rc) ->
            {
                result.set(rc);
                done.countDown();
            };
            final MemorySegment data = arena.allocate(4096, 4096);
            data.fill((byte)0x55);
            assertTrue(cow.write(0, data, 4096, 0, completion, 1));

            final AtomicInteger epochResult = new AtomicInteger(1);
            final Thread checkpoint = new Thread(() ->
                epochResult.set(cow.newEpoch(TimeUnit.MILLISECONDS.toNanos(500))));
            checkpoint.start();
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (cow.isAcceptingWrites() && System.nanoTime() < deadline)
            {
                Thread.onSpinWait();
            }
            assertFalse(cow.write(CLUSTER, data, 4096, 0, completion, 2), "gate closed while quiescing");
            checkpoint.join();
            assertEquals(-Errno.ETIMEDOUT, epochResult.get());
            assertEquals(0, cow.epoch());

            assertTrue(done.await(5, TimeUnit.SECONDS));
            assertEquals(4096, result.get());
            assertTrue(cow.isCopied(0));
            assertTrue(h.isAllocated(0));

            assertEquals(0, cow.newEpoch(TimeUnit.SECONDS.toNanos(5)));
            assertEquals(1, cow.epoch());
            assertFalse(cow.isCopied(0));
            assertFalse(h.isAllocated(0), "target emptied with the COW bitmap");
        }
        finally
        {
            slow.close();
        }
    }

    @Test
    void fuaWriteFlushesTheTargetBeforeForwardingWhenItCopied()
    {
        final FaultInjectingDevice target = new FaultInjectingDevice(h);
        final FaultInjectingDevice below = new FaultInjectingDevice(s);
        try (CowFilter cow = new CowFilter(below, target, h::makeEmpty, CLUSTER))
        {
            assertEquals(4096, SyncIo.run((c, k) -> cow.write(0, buffer, 4096, BlockDevice.FLAG_FUA, c, k)));
            assertEquals(1, target.count(Kind.FLUSH));
            assertEquals(4096, SyncIo.run((c, k) -> cow.write(0, buffer, 4096, BlockDevice.FLAG_FUA, c, k)));
            assertEquals(1, target.count(Kind.FLUSH), "nothing copied, nothing to flush");
            assertEquals(0, SyncIo.run(cow::flush));
            assertEquals(2, target.count(Kind.FLUSH));
            assertEquals(1, below.count(Kind.FLUSH));
            target.failNth(Kind.FLUSH, 1, Errno.EIO);
            assertEquals(-Errno.EIO, SyncIo.run(cow::flush));
            assertEquals(1, below.count(Kind.FLUSH), "below not flushed after the target failed");
        }
    }

    @Test
    void failedTargetResetKeepsTheEpoch()
    {
        try (CowFilter cow = new CowFilter(s, h, (c, k) ->
        {
            c.onComplete(k, -Errno.EIO);
            return true;
        }, CLUSTER))
        {
            assertEquals(4096, SyncIo.write(cow, 0, buffer, filled(4096, 0x66)));
            assertEquals(-Errno.EIO, cow.newEpoch(TimeUnit.SECONDS.toNanos(1)));
            assertEquals(0, cow.epoch());
            assertTrue(cow.isCopied(0), "COW bitmap not reset when the target was not emptied");
            assertEquals(4096, SyncIo.write(cow, 0, buffer, filled(4096, 0x67)));
            assertEquals(1, cow.copies());
        }
    }

    private static byte[] filled(final int length, final int value)
    {
        final byte[] data = new byte[length];
        Arrays.fill(data, (byte)value);
        return data;
    }
}
