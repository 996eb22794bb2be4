package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
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

    @Test
    void primaryRequestPathAllocatesNothing()
    {
        final com.sun.management.ThreadMXBean threads =
            (com.sun.management.ThreadMXBean)ManagementFactory.getThreadMXBean();
        try (Arena arena = Arena.ofConfined())
        {
            final MemorySegment buffer = arena.allocate(4096, 4096);
            final ReplicationPrimary primary = new ReplicationPrimary(new InstantDevice(), new InstantDevice(), false,
                64 * 1024, TimeUnit.SECONDS.toNanos(1), 8);
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
            final long offset = (i * 4096L) % (64L << 20);
            final boolean accepted = switch (i % 4)
            {
                case 0, 1 -> primary.write(offset, buffer, 4096, 0, completion, i);
                case 2 -> primary.read(offset, buffer, 4096, completion, i);
                default -> primary.flush(completion, i);
            };
            assertTrue(accepted);
        }
    }

    /** A 64 MiB device that completes every request at once, on the submitting thread, touching nothing. */
    private static final class InstantDevice implements BlockDevice
    {
        @Override
        public long size()
        {
            return 64L << 20;
        }

        @Override
        public int alignment()
        {
            return 1;
        }

        @Override
        public boolean isReadOnly()
        {
            return false;
        }

        @Override
        public boolean canDiscard()
        {
            return false;
        }

        @Override
        public boolean canFastZero()
        {
            return false;
        }

        @Override
        public boolean read(
            final long offset, final MemorySegment buffer, final int length, final IoCompletion completion,
            final long cookie)
        {
            completion.onComplete(cookie, length);
            return true;
        }

        @Override
        public boolean write(
            final long offset, final MemorySegment buffer, final int length, final int flags,
            final IoCompletion completion, final long cookie)
        {
            completion.onComplete(cookie, length);
            return true;
        }

        @Override
        public boolean flush(final IoCompletion completion, final long cookie)
        {
            completion.onComplete(cookie, 0);
            return true;
        }

        @Override
        public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
        {
            completion.onComplete(cookie, 0);
            return true;
        }

        @Override
        public boolean writeZeroes(
            final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
        {
            completion.onComplete(cookie, 0);
            return true;
        }

        @Override
        public long blockStatus(final long offset, final long length, final ExtentSink sink)
        {
            return length;
        }

        @Override
        public void close()
        {
        }
    }
}
