package io.understudy.engine.device;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link WriteOrderGate} over a {@link ReorderingDevice}, which completes (and applies) requests in an order the
 * test picks: overlapping writes must land in arrival order, everything else must pass at once.
 */
class WriteOrderGateTest
{
    private static final int SIZE = 64 * 1024;

    private final List<Long> completed = Collections.synchronizedList(new ArrayList<>());
    private final IoCompletion recorder = (cookie, result) -> completed.add(cookie);

    @Test
    void withoutTheGateTheDeviceKeepsTheWriteThatCompletedLast()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SIZE, 0))
        {
            assertTrue(device.write(0, filled(arena, 3072, 0x66), 3072, 0, recorder, 1));
            assertTrue(device.write(1024, filled(arena, 3072, 0x77), 3072, 0, recorder, 2));
            device.completeNewestFirst();
            assertEquals(List.of(2L, 1L), completed);
            assertRange(device.snapshot(), 1024, 2048, 0x66);
        }
    }

    @Test
    void overlappingWritesLandInArrivalOrderWhateverTheDeviceBelowDoes()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SIZE, 0))
        {
            final WriteOrderGate gate = new WriteOrderGate(device, 8);
            assertTrue(gate.write(0, filled(arena, 3072, 0x66), 3072, 0, recorder, 1));
            assertTrue(gate.write(1024, filled(arena, 3072, 0x77), 3072, 0, recorder, 2));
            assertTrue(gate.writeZeroes(2048, 512, 0, recorder, 3));
            assertEquals(List.of(0L), device.submittedOffsets(), "the overlapping ones are held");
            assertEquals(3, gate.inFlight());
            assertEquals(2, gate.heldTotal());

            device.completeNewestFirst();
            assertEquals(List.of(1L, 2L, 3L), completed);
            assertEquals(List.of(0L, 1024L, 2048L), device.submittedOffsets());
            assertEquals(0, device.overlapsSeen());
            assertEquals(0, gate.inFlight());
            final byte[] bytes = device.snapshot();
            assertRange(bytes, 0, 1024, 0x66);
            assertRange(bytes, 1024, 1024, 0x77);
            assertRange(bytes, 2048, 512, 0);
            assertRange(bytes, 2560, 1536, 0x77);
        }
    }

    @Test
    void aRequestWaitsForEveryEarlierOverlappingOneFirstComeFirstServed()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SIZE, 0))
        {
            final WriteOrderGate gate = new WriteOrderGate(device, 8);
            assertTrue(gate.write(0, filled(arena, 1024, 0x11), 1024, 0, recorder, 1));
            assertTrue(gate.write(2048, filled(arena, 1024, 0x22), 1024, 0, recorder, 2));
            // Spans both: waits for 1 and 2.
            assertTrue(gate.write(512, filled(arena, 2048, 0x33), 2048, 0, recorder, 3));
            // Overlaps only 3: waits for it, although nothing below overlaps it.
            assertTrue(gate.discard(1536, 256, recorder, 4));
            assertEquals(List.of(0L, 2048L), device.submittedOffsets());

            device.completeNewestFirst();
            assertEquals(List.of(2L, 1L, 3L, 4L), completed);
            final byte[] bytes = device.snapshot();
            assertRange(bytes, 0, 512, 0x11);
            assertRange(bytes, 512, 1024, 0x33);
            assertRange(bytes, 1536, 256, 0);
            assertRange(bytes, 1792, 768, 0x33);
            assertRange(bytes, 2560, 512, 0x22);
            assertEquals(0, device.overlapsSeen());
        }
    }

    @Test
    void nonOverlappingRequestsReadsAndFlushesPassAtOnce()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SIZE, 0))
        {
            final WriteOrderGate gate = new WriteOrderGate(device, 8);
            final MemorySegment buffer = filled(arena, 4096, 0x44);
            assertTrue(gate.write(0, buffer, 4096, 0, recorder, 1));
            assertTrue(gate.write(4096, buffer, 4096, 0, recorder, 2));
            assertTrue(gate.writeZeroes(8192, 4096, 0, recorder, 3));
            assertTrue(gate.write(12288, buffer, 0, 0, recorder, 4));
            assertTrue(gate.write(12288, buffer, 0, 0, recorder, 5));
            assertEquals(List.of(0L, 4096L, 8192L, 12288L, 12288L), device.submittedOffsets(),
                "adjacent and empty ranges overlap nothing");
            assertTrue(gate.read(0, arena.allocate(4096), 4096, recorder, 6));
            assertTrue(gate.flush(recorder, 7));
            assertEquals(List.of(6L, 7L), completed, "a read and a flush do not wait for the writes in flight");
            assertEquals(0, gate.heldTotal());
            device.completeNewestFirst();
            assertEquals(0, gate.inFlight());
        }
    }

    @Test
    void aFullGateAndARefusingDeviceArePassedBackAsBackPressure()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SIZE, 0))
        {
            final WriteOrderGate gate = new WriteOrderGate(device, 2);
            final MemorySegment buffer = filled(arena, 1024, 0x55);
            assertTrue(gate.write(0, buffer, 1024, 0, recorder, 1));
            assertTrue(gate.write(0, buffer, 1024, 0, recorder, 2));
            assertFalse(gate.write(8192, buffer, 1024, 0, recorder, 3), "capacity 2");
            device.completeNewestFirst();
            assertEquals(List.of(1L, 2L), completed);

            device.refuse(true);
            assertFalse(gate.write(8192, buffer, 1024, 0, recorder, 3), "nothing waits for it: back-pressure");
            assertEquals(0, gate.inFlight());
            device.refuse(false);
            assertTrue(gate.write(8192, buffer, 1024, 0, recorder, 3));
            device.completeNewestFirst();
            assertEquals(List.of(1L, 2L, 3L), completed);
        }
    }

    @Test
    void aHeldRequestTheDeviceRefusesWhenItsTurnComesIsRetriedByTheDutyCycle()
    {
        try (Arena arena = Arena.ofConfined(); ReorderingDevice device = new ReorderingDevice(SIZE, 0))
        {
            final WriteOrderGate gate = new WriteOrderGate(device, 4);
            assertTrue(gate.write(0, filled(arena, 2048, 0x66), 2048, 0, recorder, 1));
            assertTrue(gate.write(1024, filled(arena, 2048, 0x77), 2048, 0, recorder, 2));
            device.refuse(true);
            device.completeNewestFirst();
            assertEquals(List.of(1L), completed);
            assertEquals(1, gate.inFlight(), "accepted, so it stays in flight while the device pushes back");
            assertEquals(0, gate.doWork());
            device.refuse(false);
            assertEquals(1, gate.doWork());
            device.completeNewestFirst();
            assertEquals(List.of(1L, 2L), completed);
            assertRange(device.snapshot(), 1024, 2048, 0x77);
        }
    }

    @Test
    void aRefusedRequestThatALaterOneWaitsForKeepsItsPlaceAndIsRetriedAtOnce() throws Exception
    {
        try (Arena arena = Arena.ofShared(); ReorderingDevice memory = new ReorderingDevice(SIZE, 0))
        {
            final CountDownLatch entered = new CountDownLatch(1);
            final CountDownLatch proceed = new CountDownLatch(1);
            // Refuses its first write, but only after a later overlapping write reached the gate meanwhile.
            final BlockDevice device = new FirstWriteRefusingDevice(memory, () ->
            {
                entered.countDown();
                await(proceed);
            });
            final WriteOrderGate gate = new WriteOrderGate(device, 4);
            final MemorySegment first = filled(arena, 2048, 0x66);
            final AtomicReference<Boolean> firstAccepted = new AtomicReference<>();
            final Thread submitter = Thread.ofPlatform().start(() ->
                firstAccepted.set(gate.write(0, first, 2048, 0, recorder, 1)));
            assertTrue(entered.await(20, TimeUnit.SECONDS));
            assertTrue(gate.write(1024, filled(arena, 2048, 0x77), 2048, 0, recorder, 2));
            proceed.countDown();
            submitter.join(TimeUnit.SECONDS.toMillis(20));
            assertTrue(firstAccepted.get(), "a later request waits for it, so it cannot be handed back");
            assertEquals(2, gate.inFlight());
            // Nothing else is in flight below, so no completion would ever retry it: the submitter retries it itself.
            assertEquals(List.of(0L), memory.submittedOffsets(), "the first is retried at once, the second waits");
            assertEquals(0, gate.doWork());
            memory.completeNewestFirst();
            assertEquals(List.of(1L, 2L), completed);
            assertRange(memory.snapshot(), 1024, 2048, 0x77);
            assertRange(memory.snapshot(), 0, 1024, 0x66);
        }
    }

    /** The held path (hold, release by the predecessor's completion, submit) allocates nothing per request. */
    @Test
    void holdingAndReleasingAllocatesNothing()
    {
        final com.sun.management.ThreadMXBean threads =
            (com.sun.management.ThreadMXBean)ManagementFactory.getThreadMXBean();
        try (Arena arena = Arena.ofConfined(); ReorderingDevice memory = new ReorderingDevice(SIZE, 0))
        {
            final DeferringDevice device = new DeferringDevice(memory);
            final WriteOrderGate gate = new WriteOrderGate(device, 4);
            final MemorySegment buffer = filled(arena, 4096, 0x66);
            final long[] done = {0};
            final IoCompletion counter = (cookie, result) -> done[0]++;
            final int rounds = 100_000;
            runHeldPairs(gate, device, buffer, counter, rounds);
            final long before = threads.getCurrentThreadAllocatedBytes();
            runHeldPairs(gate, device, buffer, counter, rounds);
            final long allocated = threads.getCurrentThreadAllocatedBytes() - before;
            System.out.printf("WriteOrderGate held path: %d bytes allocated for %d held requests%n", allocated,
                rounds);
            assertEquals(4L * rounds, done[0]);
            assertEquals(2L * rounds, gate.heldTotal());
            assertTrue(allocated < 4096, "allocated " + allocated + " bytes");
        }
    }

    private static void runHeldPairs(
        final WriteOrderGate gate, final DeferringDevice device, final MemorySegment buffer,
        final IoCompletion completion, final int rounds)
    {
        for (int i = 0; i < rounds; i++)
        {
            assertTrue(gate.write(0, buffer, 4096, 0, completion, i));
            assertTrue(gate.write(2048, buffer, 2048, 0, completion, i));
            device.completeAll();
        }
    }

    /** Keeps write completions pending in preallocated arrays until {@link #completeAll()}, newest first. */
    private static final class DeferringDevice extends ForwardingBlockDevice
    {
        private final IoCompletion[] completions = new IoCompletion[8];
        private final long[] cookies = new long[8];
        private final int[] lengths = new int[8];
        private int pending;

        DeferringDevice(final BlockDevice device)
        {
            super(device);
        }

        @Override
        public boolean write(
            final long offset, final MemorySegment buffer, final int length, final int flags,
            final IoCompletion completion, final long cookie)
        {
            completions[pending] = completion;
            cookies[pending] = cookie;
            lengths[pending++] = length;
            return true;
        }

        void completeAll()
        {
            while (pending > 0)
            {
                pending--;
                final IoCompletion completion = completions[pending];
                completions[pending] = null;
                completion.onComplete(cookies[pending], lengths[pending]);
            }
        }
    }

    /**
     * Several threads keep overlapping write-type requests in flight over a device that completes them at random
     * from two threads. Forbidden: two overlapping requests pending below at once. Exact model: replaying every
     * request in the order its completion was delivered gives the device's bytes (overlapping requests complete
     * in arrival order, the others commute).
     */
    @Test
    void concurrentSubmittersOverlappingWritesReplayExactlyInCompletionOrder() throws Exception
    {
        final int threads = 4;
        final int perThread = 3000;
        final int span = 16 * 1024;
        try (ReorderingDevice device = new ReorderingDevice(span, 2))
        {
            final WriteOrderGate gate = new WriteOrderGate(device, 16);
            final OverlappingWriters writers = new OverlappingWriters();
            writers.run(gate, span, threads, 4, perThread);
            assertEquals(0, device.overlapsSeen(), "overlapping requests pending below at once");
            assertEquals(0, gate.inFlight());
            assertArrayEquals(writers.model(span), device.snapshot());
            System.out.printf("WriteOrderGate stress: %d requests, %d held behind an overlapping one%n",
                threads * perThread, gate.heldTotal());
            assertTrue(gate.heldTotal() > threads * perThread / 10, "the load must make requests overlap");
        }
    }

    private static MemorySegment filled(final Arena arena, final int length, final int value)
    {
        return arena.allocate(length).fill((byte)value);
    }

    private static void assertRange(final byte[] bytes, final int offset, final int length, final int value)
    {
        for (int i = offset; i < offset + length; i++)
        {
            if (bytes[i] != (byte)value)
            {
                throw new AssertionError(String.format("byte %d is 0x%02x, expected 0x%02x", i, bytes[i] & 0xff,
                    value));
            }
        }
    }

    private static void await(final CountDownLatch latch)
    {
        try
        {
            assertTrue(latch.await(20, TimeUnit.SECONDS));
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }
}
