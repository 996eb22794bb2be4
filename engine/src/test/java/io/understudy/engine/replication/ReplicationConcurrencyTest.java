package io.understudy.engine.replication;

import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.SyncIo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
import static io.understudy.engine.replication.ReplicationFixture.QUEUE_DEPTH;
import static io.understudy.engine.replication.ReplicationFixture.SECOND;
import static io.understudy.engine.replication.ReplicationFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Guest writes racing checkpoints of a real pair (AX-12 at engine level). */
class ReplicationConcurrencyTest
{
    private static final int WRITERS = 2;
    private static final int CHECKPOINTS = 12;

    @TempDir
    Path dir;

    /**
     * Writers (each on its own stripe of clusters, so the order of overlapping writes is defined) write, zero
     * and discard while the control thread checkpoints the pair again and again (coordinated: the secondary's
     * checkpoint runs while the primary holds the guest). Every guest request must succeed in full (held, never
     * failed, by a checkpoint), every checkpoint must succeed, and at every fourth checkpoint and at the end P,
     * S and the SVM view must be byte-identical.
     */
    @Test
    void ax12_guestWritesRacingCheckpointsKeepPrimaryAndSecondaryIdentical() throws Exception
    {
        try (ReplicationFixture fx = new ReplicationFixture(dir))
        {
            final BlockDevice pDisk = fx.disk("p.raw", 0x11);
            final BlockDevice sDisk = fx.disk("s.raw", 0x11);
            final ReplicationSecondary secondary = fx.owned(new ReplicationSecondary(sDisk, fx.storage("h", SIZE),
                fx.storage("a", SIZE), CLUSTER, false, QUEUE_DEPTH));
            final ReplicationPrimary primary = fx.owned(new ReplicationPrimary(pDisk, secondary.sink(), false,
                CLUSTER, SECOND, QUEUE_DEPTH));
            fx.dutyCycle(secondary::doWork);
            fx.dutyCycle(primary::doWork);
            assertTrue(secondary.start(ReplicationMode.SECONDARY).ok());
            assertTrue(primary.start(ReplicationMode.PRIMARY).ok());

            final AtomicBoolean running = new AtomicBoolean(true);
            final AtomicReference<Throwable> failure = new AtomicReference<>();
            final AtomicLong requests = new AtomicLong();
            final List<Thread> writers = new ArrayList<>();
            for (int t = 0; t < WRITERS; t++)
            {
                final int stripe = t;
                final MemorySegment buffer = fx.arena.allocate(CLUSTER, 4096);
                final Thread writer = new Thread(() ->
                {
                    final SplittableRandom random = new SplittableRandom(stripe);
                    final long clusters = SIZE / CLUSTER;
                    try
                    {
                        for (int i = 0; running.get(); i++)
                        {
                            final long cluster = random.nextLong(clusters / WRITERS) * WRITERS + stripe;
                            final int start = random.nextInt(CLUSTER / 512) * 512;
                            final int length = 512 + random.nextInt((CLUSTER - start) / 512) * 512;
                            final long offset = cluster * CLUSTER + start;
                            final int kind = random.nextInt(10);
                            final int rc;
                            if (kind == 0)
                            {
                                rc = SyncIo.run((c, k) -> primary.writeZeroes(offset, length, 0, c, k));
                                assertEquals(0, rc, "write-zeroes");
                            }
                            else if (kind == 1)
                            {
                                rc = SyncIo.run((c, k) -> primary.discard(offset, length, c, k));
                                assertEquals(0, rc, "discard");
                            }
                            else
                            {
                                buffer.asSlice(0, length).fill((byte)(stripe * 100 + i % 97 + 1));
                                rc = SyncIo.run((c, k) -> primary.write(offset, buffer, length, 0, c, k));
                                assertEquals(length, rc, "write");
                            }
                            requests.incrementAndGet();
                        }
                    }
                    catch (final Throwable e)
                    {
                        failure.compareAndSet(null, e);
                    }
                }, "guest-writer-" + t);
                writer.start();
                writers.add(writer);
            }

            long maxDrain = 0;
            long maxTotal = 0;
            try
            {
                for (int i = 0; i < CHECKPOINTS && failure.get() == null; i++)
                {
                    Thread.sleep(15);
                    final boolean verify = i % 4 == 3;
                    final CheckpointReport[] onSecondary = new CheckpointReport[1];
                    final CheckpointReport onPrimary = primary.checkpoint(10 * SECOND, deadline ->
                    {
                        onSecondary[0] = secondary.checkpoint(deadline - System.nanoTime());
                        if (verify && onSecondary[0].ok())
                        {
                            // The guest is held at the checkpoint: P, S and the SVM's new view agree exactly.
                            fx.assertSameBytes(pDisk, sDisk);
                            fx.assertSameBytes(pDisk, secondary.view());
                        }
                        return onSecondary[0].result();
                    });
                    assertTrue(onPrimary.ok(), onPrimary + " / " + onSecondary[0]);
                    maxDrain = Math.max(maxDrain, Math.max(onPrimary.drainNanos(), onSecondary[0].drainNanos()));
                    maxTotal = verify ? maxTotal : Math.max(maxTotal, onPrimary.totalNanos());
                }
            }
            finally
            {
                running.set(false);
                for (final Thread writer : writers)
                {
                    writer.join(10_000);
                }
            }
            assertNull(failure.get(), () -> "writer failed: " + failure.get());
            assertTrue(requests.get() > 50, "writers made progress: " + requests.get());
            assertEquals(CHECKPOINTS, primary.epoch());
            assertEquals(CHECKPOINTS, secondary.epoch());
            assertSame(ReplicationState.RUNNING, primary.state());
            assertEquals(0, primary.link().timeouts());
            assertEquals(0, primary.link().unacknowledgedBytes(), "every forwarded byte was answered");
            assertEquals(CHECKPOINTS, primary.checkpoints().count());
            assertEquals(CHECKPOINTS, secondary.checkpoints().count());

            assertTrue(primary.checkpoint(SECOND, deadline -> secondary.checkpoint(deadline - System.nanoTime())
                .result()).ok());
            fx.assertSameBytes(pDisk, sDisk);
            fx.assertSameBytes(pDisk, secondary.view());
            System.out.printf("AX-12: %d guest requests, %d checkpoints, max drain %d us, max coordinated " +
                "checkpoint (unverified ones) %d us%n",
                requests.get(), CHECKPOINTS, TimeUnit.NANOSECONDS.toMicros(maxDrain),
                TimeUnit.NANOSECONDS.toMicros(maxTotal));
        }
    }

    /**
     * AX-10 and AX-11 through the secondary's gates: SVM reads race forwarded writes (two writers, overlapping
     * each other on every cluster) for one epoch; no read may ever return a byte other than the checkpoint's,
     * every touched cluster is copied into H once (H holds only originals), and the checkpoint then shows S. With H's clusters
     * smaller than A's, A's reads and copy-ups meet H clusters of one A cluster copied at different times. With
     * copies in the kernel, the originals reach H without passing through the COW filter's buffers.
     */
    @ParameterizedTest(name = "H clusters of {0} bytes, copies through {1}")
    @CsvSource({"65536, MEMORY", "4096, MEMORY", "4096, KERNEL"})
    void ax10_ax11_svmReadsRacingForwardedWritesSeeOnlyCheckpointData(final int hiddenCluster, final CowCopy copy)
        throws Exception
    {
        try (ReplicationFixture fx = new ReplicationFixture(dir))
        {
            final BlockDevice sDisk = fx.disk("s.raw", 0x11);
            final ReplicationSecondary secondary = fx.owned(new ReplicationSecondary(sDisk, fx.storage("h", SIZE),
                fx.storage("a", SIZE), CLUSTER, hiddenCluster, false, QUEUE_DEPTH, copy));
            fx.dutyCycle(secondary::doWork);
            assertTrue(secondary.start(ReplicationMode.SECONDARY).ok());

            final int clusters = (int)(SIZE / CLUSTER);
            final int readsWanted = 2000;
            final MemorySegment checkpointData = fx.arena.allocate(2 * CLUSTER, 4096);
            checkpointData.fill((byte)0x11);
            final AtomicBoolean running = new AtomicBoolean(true);
            final AtomicReference<Throwable> failure = new AtomicReference<>();
            final AtomicLong reads = new AtomicLong();
            final List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < 2; t++)
            {
                final int writer = t;
                final MemorySegment buffer = fx.arena.allocate(2 * CLUSTER, 4096);
                buffer.fill((byte)(0x22 + writer));
                threads.add(new Thread(() ->
                {
                    final SplittableRandom random = new SplittableRandom(100 + writer);
                    try
                    {
                        while (running.get())
                        {
                            final long offset =
                                random.nextLong(clusters) * CLUSTER + random.nextInt(CLUSTER / 512) * 512L;
                            final int length = (int)Math.min(512 + random.nextInt(CLUSTER / 512) * 512L,
                                (long)clusters * CLUSTER - offset);
                            assertEquals(length, SyncIo.run((c, k) ->
                                secondary.sink().write(offset, buffer, length, 0, c, k)));
                        }
                    }
                    catch (final Throwable e)
                    {
                        failure.compareAndSet(null, e);
                    }
                }, "fwd-writer-" + t));
            }
            final MemorySegment readBuffer = fx.arena.allocate(2 * CLUSTER, 4096);
            final Thread reader = new Thread(() ->
            {
                final SplittableRandom random = new SplittableRandom(7);
                try
                {
                    for (int r = 0; r < readsWanted && failure.get() == null; r++)
                    {
                        final long offset =
                            random.nextLong(clusters) * CLUSTER + random.nextInt(CLUSTER / 512) * 512L;
                        final int length = (int)Math.min(512 + random.nextInt(2 * CLUSTER / 512) * 512L,
                            (long)clusters * CLUSTER - offset);
                        assertEquals(length, SyncIo.run((c, k) ->
                            secondary.view().read(offset, readBuffer, length, c, k)));
                        final long mismatch = MemorySegment.mismatch(readBuffer, 0, length, checkpointData, 0, length);
                        if (mismatch >= 0)
                        {
                            throw new AssertionError("SVM read at " + (offset + mismatch) + " saw new data");
                        }
                        reads.incrementAndGet();
                    }
                }
                catch (final Throwable e)
                {
                    failure.compareAndSet(null, e);
                }
            }, "svm-reader");
            threads.forEach(Thread::start);
            reader.start();
            reader.join(60_000);
            running.set(false);
            for (final Thread thread : threads)
            {
                thread.join(10_000);
            }
            assertNull(failure.get(), () -> "failed: " + failure.get());
            assertEquals(readsWanted, reads.get());

            final long touched = secondary.hidden().allocatedBytes() / hiddenCluster;
            assertTrue(touched > 0);
            assertEquals(touched, secondary.cowCopies());
            assertEquals(copy == CowCopy.KERNEL ? touched : 0, secondary.offloadedCowCopies());
            // A second copy of a cluster would have carried the writers' data into H: H holds originals only.
            fx.assertBytes(secondary.hidden(), 0, SIZE, 0x11);
            System.out.printf("AX-10: %d SVM reads raced forwarded writes, %d clusters copied%n", reads.get(),
                touched);
            assertTrue(secondary.checkpoint(SECOND).ok());
            fx.assertSameBytes(sDisk, secondary.view());
        }
    }
}
