package io.understudy.engine.cow;

import io.understudy.engine.bitmap.AtomicBitmap;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.DelayedReadDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.overlay.OverlayDevice;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Forwarded writes through the COW filter race SVM reads of A -> H -> S over the same clusters (spec AX-10,
 * AX-11). Every byte of every read must be checkpoint data (INV-ISO: never new data, never a mixture);
 * after each epoch H's view must equal the checkpoint exactly and the number of copies must equal the
 * number of distinct clusters written (exactly one copy per cluster, however many writes raced on it).
 */
class CowConcurrencyTest
{
    private static final int DISK_SIZE = 8 << 20;
    private static final int MAX_IO = 128 * 1024;
    private static final long EPOCH_NANOS = TimeUnit.MILLISECONDS.toNanos(700);

    @TempDir
    Path dir;

    @ParameterizedTest(name = "cow={0} hidden={1}")
    @CsvSource({"65536, 65536", "16384, 4096"})
    void svmReadsNeverSeeForwardedWritesOfTheEpoch(final int cowCluster, final int hiddenCluster) throws Exception
    {
        final long seed = System.nanoTime();
        final byte[] initial = new byte[DISK_SIZE];
        new SplittableRandom(seed).nextBytes(initial);
        final Path diskPath = dir.resolve("disk");
        Files.write(diskPath, initial);
        try (IoEngine engine = new ThreadPoolIoEngine(2);
            Arena arena = Arena.ofShared();
            AtomicBitmap touched = new AtomicBitmap(DISK_SIZE / cowCluster))
        {
            final BlockDevice s = engine.open(diskPath, FileOptions.readWrite());
            // SVM reads reach S late (as behind a busy queue); the COW path uses S directly.
            final DelayedReadDevice slowS = new DelayedReadDevice(s, 1000);
            final OverlayDevice h = new OverlayDevice(slowS,
                FileOverlayStorage.create(engine, dir.resolve("hidden"), DISK_SIZE, FileOptions.readWrite()), hiddenCluster);
            final OverlayDevice a = new OverlayDevice(h, new MemoryOverlayStorage(DISK_SIZE), 4096);
            final CowFilter cow = new CowFilter(s, h, h::makeEmpty, cowCluster);
            try
            {
                final MemorySegment big = arena.allocate(DISK_SIZE, 4096);
                long copiesBefore = 0;
                for (int epoch = 0; epoch < 3; epoch++)
                {
                    final byte[] checkpoint = SyncIo.read(s, 0, big, DISK_SIZE);
                    final AtomicReference<String> failure = new AtomicReference<>();
                    final AtomicBoolean running = new AtomicBoolean(true);
                    final AtomicLong reads = new AtomicLong();
                    final Thread[] threads = new Thread[4];
                    for (int t = 0; t < threads.length; t++)
                    {
                        final boolean writer = t < 2;
                        final SplittableRandom random = new SplittableRandom(seed * 31 + epoch * 7 + t);
                        final MemorySegment buffer = arena.allocate(MAX_IO, 4096);
                        threads[t] = new Thread(() ->
                        {
                            final byte[] data = new byte[MAX_IO];
                            while (running.get() && failure.get() == null)
                            {
                                final int offset = random.nextInt(DISK_SIZE);
                                final int length = 1 + random.nextInt(Math.min(MAX_IO, DISK_SIZE - offset));
                                if (writer)
                                {
                                    random.nextBytes(data);
                                    MemorySegment.copy(data, 0, buffer, ValueLayout.JAVA_BYTE, 0, length);
                                    touched.setRange(offset / cowCluster, (offset + length - 1) / cowCluster + 1);
                                    final int rc = SyncIo.run((c, k) -> cow.write(offset, buffer, length, 0, c, k));
                                    if (rc != length)
                                    {
                                        failure.compareAndSet(null, "forwarded write returned " + rc);
                                    }
                                }
                                else
                                {
                                    final int rc = SyncIo.run((c, k) -> a.read(offset, buffer, length, c, k));
                                    final byte[] got = buffer.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
                                    final int mismatch = Arrays.mismatch(got, 0, length, checkpoint, offset, offset + length);
                                    if (rc != length || mismatch >= 0)
                                    {
                                        failure.compareAndSet(null, "seed " + seed + ": SVM read [" + offset + ", +" +
                                            length + ") returned " + rc + ", first foreign byte at " +
                                            (mismatch < 0 ? -1 : offset + mismatch));
                                    }
                                    reads.incrementAndGet();
                                }
                            }
                        });
                        threads[t].start();
                    }
                    final long deadline = System.nanoTime() + EPOCH_NANOS;
                    while (System.nanoTime() < deadline && failure.get() == null)
                    {
                        Thread.sleep(10);
                    }
                    running.set(false);
                    for (final Thread thread : threads)
                    {
                        thread.join();
                    }
                    assertNull(failure.get());
                    assertTrue(reads.get() > 20, "too few reads: " + reads.get());
                    assertArrayEquals(checkpoint, SyncIo.read(h, 0, big, DISK_SIZE),
                        "seed " + seed + ": H view is the checkpoint");
                    assertEquals(touched.cardinality(), cow.copies() - copiesBefore,
                        "seed " + seed + ": exactly one copy per written cluster");
                    assertEquals(0, SyncIo.run(a::makeEmpty));
                    assertEquals(0, cow.newEpoch(TimeUnit.SECONDS.toNanos(5)));
                    assertEquals(epoch + 1, cow.epoch());
                    touched.clearAll();
                    copiesBefore = cow.copies();
                }
            }
            finally
            {
                cow.close();
                a.close();
                h.close();
                slowS.close();
                s.close();
            }
        }
    }
}
