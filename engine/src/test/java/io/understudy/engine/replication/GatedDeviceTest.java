package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.SyncIo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
import static io.understudy.engine.replication.ReplicationFixture.SECOND;
import static io.understudy.engine.replication.ReplicationFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The gate's states, quiescing with a deadline and write observation; the error latch; the CLI labels. */
class GatedDeviceTest
{
    @TempDir
    Path dir;

    private ReplicationFixture fx;
    private HangingDevice disk;
    private final List<long[]> observed = new ArrayList<>();
    private GatedDevice gate;

    @BeforeEach
    void setUp() throws Exception
    {
        fx = new ReplicationFixture(dir);
        disk = new HangingDevice(fx.disk("d.raw", 0x11));
        gate = new GatedDevice(disk, SIZE, 4, (offset, length) -> observed.add(new long[]{offset, length}),
            Errno.EIO);
    }

    @AfterEach
    void tearDown() throws Exception
    {
        disk.release();
        fx.close();
    }

    @Test
    void refusesWithItsErrnoUntilOpenedAndObservesOnlyAdmittedWrites()
    {
        assertEquals(GatedDevice.REFUSING, gate.state());
        assertEquals(-Errno.EIO, fx.write(gate, 0, CLUSTER, 0x22));
        assertEquals(-Errno.EIO, fx.read(gate, 0, 4096));
        assertTrue(observed.isEmpty());
        gate.open();
        fx.fill(gate, CLUSTER, CLUSTER, 0x22);
        fx.assertBytes(gate, CLUSTER, CLUSTER, 0x22);
        assertEquals(1, observed.size());
        assertArrayEquals(new long[]{CLUSTER, CLUSTER}, observed.get(0));
        gate.refuse(Errno.ESHUTDOWN);
        assertEquals(-Errno.ESHUTDOWN, fx.write(gate, 0, CLUSTER, 0x23));
        assertEquals(1, observed.size());
        fx.assertBytes(disk, 0, CLUSTER, 0x11);
    }

    @Test
    void holdIsBackPressureAndWritesHeldLetReadsPass()
    {
        gate.open();
        final int[] calls = {0};
        gate.hold();
        assertFalse(gate.read(0, fx.buffer, 4096, (c, r) -> calls[0]++, 0));
        assertFalse(gate.write(0, fx.buffer, 4096, 0, (c, r) -> calls[0]++, 0));
        assertFalse(gate.flush((c, r) -> calls[0]++, 0));
        gate.holdWrites();
        fx.assertBytes(gate, 0, 4096, 0x11);
        assertFalse(gate.writeZeroes(0, 4096, 0, (c, r) -> calls[0]++, 0));
        assertFalse(gate.discard(0, 4096, (c, r) -> calls[0]++, 0));
        assertEquals(0, calls[0], "nothing started, nothing completed");
        assertEquals(0, gate.inFlight());
        assertTrue(observed.isEmpty());
    }

    @Test
    void awaitIdleHonoursItsDeadlineAndSeesEveryAdmittedRequest()
    {
        gate.open();
        disk.hang(true);
        final int[] result = {Integer.MIN_VALUE};
        assertTrue(gate.write(0, fx.buffer, CLUSTER, 0, (c, r) -> result[0] = r, 3));
        assertEquals(1, gate.inFlight());
        gate.hold();
        final long start = System.nanoTime();
        assertFalse(gate.awaitIdle(start + SECOND / 10));
        assertTrue(System.nanoTime() - start < SECOND);
        disk.release();
        assertTrue(gate.awaitIdle(System.nanoTime() + SECOND));
        assertEquals(-Errno.ESHUTDOWN, result[0]);
        assertEquals(0, gate.inFlight());
    }

    @Test
    void slotsBoundTheRequestsInFlight()
    {
        gate.open();
        disk.hang(true);
        for (int i = 0; i < 4; i++)
        {
            assertTrue(gate.flush((c, r) -> { }, i));
        }
        assertFalse(gate.flush((c, r) -> { }, 4), "queue depth 4");
        disk.release();
        assertTrue(gate.awaitIdle(System.nanoTime() + SECOND));
        disk.hang(false);
        assertEquals(0, SyncIo.run(gate::flush));
    }

    @Test
    void delegateSwapSendsNewRequestsToTheNewDevice() throws Exception
    {
        final BlockDevice other = fx.disk("e.raw", 0x44);
        gate.open();
        gate.hold();
        gate.delegate(other);
        gate.open();
        fx.assertBytes(gate, 0, CLUSTER, 0x44);
    }

    @Test
    void errorLatchKeepsTheFirstErrorUntilCleared()
    {
        final ErrorLatch latch = new ErrorLatch();
        assertNull(latch.get());
        assertTrue(latch.latch(Errno.ETIMEDOUT, "first"));
        assertFalse(latch.latch(-Errno.EIO, "second"));
        assertEquals(-Errno.ETIMEDOUT, latch.get().errno());
        assertEquals("first", latch.get().reason());
        assertEquals("ETIMEDOUT: first", latch.get().toString());
        assertEquals(2, latch.count());
        latch.clear();
        assertFalse(latch.isSet());
        assertTrue(latch.latch(Errno.EIO, "third"));
        assertEquals("third", latch.get().reason());
    }

    @Test
    void stateLabelsAreTheCliContract()
    {
        assertEquals(List.of("none", "running", "checkpointing", "failover", "failover-failed", "degraded", "done"),
            Arrays.stream(ReplicationState.values()).map(ReplicationState::label).toList());
    }
}
