package io.understudy.engine.replication;

import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.OverlappingWriters;
import io.understudy.engine.device.ReorderingDevice;
import io.understudy.engine.device.WriteOrderGate;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * AX-11 at engine level (INV-S): concurrent guests keep overlapping writes in flight, and the disks below complete
 * concurrent requests in random order (as a thread pool, io_uring or a network peer may). Both the primary's guest
 * path and the secondary's sink must apply overlapping writes in one order, the order of their completions; the
 * bytes are checked against replaying every request in completion order.
 */
class OverlappingWritesTest
{
    private static final int SPAN = 64 * 1024;
    private static final int CLUSTER = 4096;
    private static final int QUEUE_DEPTH = 16;
    private static final int THREADS = 4;
    private static final int PER_THREAD = 2000;

    @Test
    void ax11_primaryKeepsPAndSIdenticalUnderOverlappingGuestWritesInFlight() throws Exception
    {
        try (ReorderingDevice p = new ReorderingDevice(SPAN, 2); ReorderingDevice s = new ReorderingDevice(SPAN, 2))
        {
            final ReplicationPrimary primary = new ReplicationPrimary(p, s, false, CLUSTER,
                TimeUnit.SECONDS.toNanos(20), QUEUE_DEPTH);
            try
            {
                assertTrue(primary.start(ReplicationMode.PRIMARY).ok());
                final OverlappingWriters writers = new OverlappingWriters();
                writers.run(primary, SPAN, THREADS, 4, PER_THREAD);
                assertArrayEquals(p.snapshot(), s.snapshot(), "P and S differ");
                assertArrayEquals(writers.model(SPAN), p.snapshot());
                assertEquals(0, p.overlapsSeen(), "overlapping writes in flight on P at once");
                assertEquals(0, s.overlapsSeen(), "overlapping writes in flight on S at once");
                assertNull(primary.latchedError());
                assertEquals(ReplicationState.RUNNING, primary.state());
            }
            finally
            {
                primary.close();
            }
        }
    }

    @Test
    void ax11_secondarySinkAppliesOverlappingForwardedWritesInCompletionOrder() throws Exception
    {
        try (ReorderingDevice s = new ReorderingDevice(SPAN, 2);
            ReplicationSecondary secondary = new ReplicationSecondary(s, new MemoryOverlayStorage(SPAN, CLUSTER),
                new MemoryOverlayStorage(SPAN, CLUSTER), CLUSTER, false, QUEUE_DEPTH))
        {
            assertTrue(secondary.start(ReplicationMode.SECONDARY).ok());
            final OverlappingWriters writers = new OverlappingWriters();
            writers.run(secondary.sink(), SPAN, THREADS, 4, PER_THREAD);
            assertArrayEquals(writers.model(SPAN), s.snapshot(), "S is not the completion-order replay");
            assertEquals(0, s.overlapsSeen(), "overlapping forwarded writes in flight on S at once");
            assertNull(secondary.latchedError());
        }
    }

    /** A checkpoint's drain (the gate's in-flight count) waits for a held write, not only for those below. */
    @Test
    void aDrainCountsWritesHeldBehindAnOverlappingOneAsInFlight()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SPAN, 0))
        {
            final GatedDevice gate = new GatedDevice(new WriteOrderGate(device, QUEUE_DEPTH), SPAN, QUEUE_DEPTH, null,
                Errno.EIO);
            gate.open();
            final MemorySegment buffer = arena.allocate(4096).fill((byte)0x66);
            final AtomicInteger completed = new AtomicInteger();
            final IoCompletion completion = (cookie, result) -> completed.incrementAndGet();
            assertTrue(gate.write(0, buffer, 4096, 0, completion, 1));
            assertTrue(gate.write(2048, buffer, 4096, 0, completion, 2));
            gate.hold();
            assertEquals(2, gate.inFlight());
            assertEquals(1, device.pendingCount(), "the second write is held above the device");
            assertFalse(gate.awaitIdle(System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50)));
            device.completeNewestFirst();
            assertEquals(2, completed.get());
            assertTrue(gate.awaitIdle(System.nanoTime() + TimeUnit.SECONDS.toNanos(1)));
            gate.close();
        }
    }
}
