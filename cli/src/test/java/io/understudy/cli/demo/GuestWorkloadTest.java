package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The guest against a plain file, no replication: its bookkeeping must be exact, i.e. after its writes the file
 * holds what the model says once the epoch is committed, and not what it said before (so the verifier would
 * notice writes that were not rolled back).
 */
class GuestWorkloadTest
{
    private static final long SIZE = 16L << 20;
    private static final long TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(60);

    @TempDir
    Path dir;

    @Test
    void everyAcknowledgedWriteIsInTheModelAndOnTheDisk() throws IOException
    {
        final DiskModel model = new DiskModel(SIZE, 11);
        final Path image = dir.resolve("disk.img");
        ExpectedImage.write(model, image);
        try (IoEngine engine = new ThreadPoolIoEngine())
        {
            final BlockDevice file = engine.open(image, FileOptions.readWrite());
            try (GuestWorkload guest = new GuestWorkload(file, model, 11))
            {
                final long deadline = System.nanoTime() + TIMEOUT_NANOS;
                // More bytes than the disk holds: blocks are overwritten, the sequential stream wraps.
                while (guest.bytes() < SIZE + (4 << 20) && System.nanoTime() < deadline)
                {
                    if (guest.submit() == 0)
                    {
                        LockSupport.parkNanos(10_000);
                    }
                }
                while (guest.inFlight() > 0 && System.nanoTime() < deadline)
                {
                    LockSupport.parkNanos(10_000);
                }
                assertEquals(0, guest.inFlight());
                assertNull(guest.failure());
                assertTrue(guest.writes() > GuestWorkload.RANDOM_SLOTS, "writes: " + guest.writes());
            }
        }
        final Verification before = DiskVerifier.verify(model, image);
        assertFalse(before.ok(), "the disk changed, the checkpointed state must not match any more");
        assertTrue(model.pendingBlocks() > SIZE / DiskModel.BLOCK_SIZE / 2, "pending: " + model.pendingBlocks());
        model.commitEpoch();
        final Verification after = DiskVerifier.verify(model, image);
        assertTrue(after.ok(), after.describe());
        assertEquals(SIZE, after.bytesVerified());
    }
}
