package io.understudy.engine.replication;

import io.understudy.engine.device.FirstWriteRefusingDevice;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.MemoryDevice;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link MirroringDevice} over real memory devices: the peer part of a write is never left waiting. */
class MirroringDeviceTest
{
    private static final int SIZE = 64 * 1024;

    /**
     * The local part completes before the link pushes back the peer part, so no completion is left to retry it:
     * the submitter retries it itself, without a duty cycle.
     */
    @Test
    void aPeerPartRefusedAfterTheLocalPartCompletedIsRetriedAtOnce()
    {
        try (Arena arena = Arena.ofConfined())
        {
            final MemoryDevice local = new MemoryDevice(arena.allocate(SIZE));
            final MemorySegment remoteDisk = arena.allocate(SIZE);
            final MemoryDevice remote = new MemoryDevice(remoteDisk);
            final FirstWriteRefusingDevice refusingOnce = new FirstWriteRefusingDevice(remote, () -> { });
            final PeerLink link = new PeerLink(refusingOnce, TimeUnit.SECONDS.toNanos(20), 4,
                (errno, reason) -> { });
            final MirroringDevice mirror = new MirroringDevice(local, link, 4);
            final MemorySegment buffer = arena.allocate(4096).fill((byte)0x5a);
            final int[] result = {Integer.MIN_VALUE};
            final IoCompletion completion = (cookie, value) -> result[0] = value;

            assertTrue(mirror.write(8192, buffer, 4096, 0, completion, 1));

            assertEquals(2, refusingOnce.writeCalls(), "refused once, then retried by the submitter");
            assertEquals(4096, result[0], "completed without a duty cycle");
            assertEquals(0, mirror.doWork());
            assertEquals(0x5a5a5a5a, remoteDisk.get(ValueLayout.JAVA_INT_UNALIGNED, 8192));
            assertTrue(link.isForwarding());
        }
    }
}
