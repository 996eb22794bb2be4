package io.understudy.engine.replication;

import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.MemoryDevice;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The replication layer's per-request path allocates nothing: guest writes, flushes and reads through a running
 * non-shared {@link ReplicationPrimary} (gate, dirty bitmap, mirror, peer link with tickets) over devices that
 * complete synchronously, so every byte the submitting thread allocates is the replication layer's.
 */
class ReplicationAllocationTest
{
    private static final int REQUESTS = 200_000;
    private static final long DISK = 64L << 20;

    @Test
    void primaryRequestPathAllocatesNothing()
    {
        final com.sun.management.ThreadMXBean threads =
            (com.sun.management.ThreadMXBean)ManagementFactory.getThreadMXBean();
        try (Arena arena = Arena.ofConfined())
        {
            final MemorySegment buffer = arena.allocate(4096, 4096);
            final ReplicationPrimary primary = new ReplicationPrimary(new MemoryDevice(arena.allocate(DISK)),
                new MemoryDevice(arena.allocate(DISK)), false, 64 * 1024, TimeUnit.SECONDS.toNanos(1), 8);
            try
            {
                assertTrue(primary.start(ReplicationMode.PRIMARY).ok());
                final long[] completed = {0};
                final IoCompletion completion = (cookie, result) -> completed[0] += result >= 0 ? 1 : 0;
                run(primary, buffer, completion);
                completed[0] = 0;
                final long before = threads.getCurrentThreadAllocatedBytes();
                run(primary, buffer, completion);
                final long allocated = threads.getCurrentThreadAllocatedBytes() - before;
                System.out.printf("replication request path: %d bytes allocated for %d requests%n", allocated,
                    REQUESTS);
                assertEquals(REQUESTS, completed[0]);
                assertTrue(allocated < 4096, "allocated " + allocated + " bytes for " + REQUESTS + " requests");
            }
            finally
            {
                primary.close();
            }
        }
    }

    private static void run(final ReplicationPrimary primary, final MemorySegment buffer, final IoCompletion completion)
    {
        for (int i = 0; i < REQUESTS; i++)
        {
            final long offset = (i * 4096L) % DISK;
            final boolean accepted = switch (i % 4)
            {
                case 0, 1 -> primary.write(offset, buffer, 4096, 0, completion, i);
                case 2 -> primary.read(offset, buffer, 4096, completion, i);
                default -> primary.flush(completion, i);
            };
            assertTrue(accepted);
        }
    }
}
