package io.understudy.engine.replication;

import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.device.FaultInjectingDevice.Kind;
import io.understudy.engine.io.FileOptions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
import static io.understudy.engine.replication.ReplicationFixture.MIB;
import static io.understudy.engine.replication.ReplicationFixture.QUEUE_DEPTH;
import static io.understudy.engine.replication.ReplicationFixture.SECOND;
import static io.understudy.engine.replication.ReplicationFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Shared-disk mode (spec 1.3, R7): one raw file opened by both sides (two file handles, as two hosts would),
 * the primary shipping COW originals into the secondary's H through the sink, whole clusters of H whether its
 * clusters are as large as the primary's or smaller.
 */
@ParameterizedClass(name = "H clusters of {0} bytes")
@ValueSource(ints = {CLUSTER, 4096})
class ReplicationSharedDiskTest
{
    private static final long FORWARD_TIMEOUT = TimeUnit.MILLISECONDS.toNanos(1000);
    private static final long C10 = 10L * CLUSTER;

    @TempDir
    Path dir;

    private ReplicationFixture fx;
    private BlockDevice primaryHandle;
    private BlockDevice secondaryHandle;
    private ReplicationSecondary secondary;
    private HangingDevice hangingWire;
    private FaultInjectingDevice wire;
    private ReplicationPrimary primary;
    private final int hiddenCluster;

    ReplicationSharedDiskTest(final int hiddenCluster)
    {
        this.hiddenCluster = hiddenCluster;
    }

    @BeforeEach
    void setUp() throws Exception
    {
        fx = new ReplicationFixture(dir);
        primaryHandle = fx.disk("shared.raw", 0x11);
        secondaryHandle = fx.owned(fx.engine.open(dir.resolve("shared.raw"), FileOptions.readWrite()));
        secondary = fx.owned(new ReplicationSecondary(secondaryHandle, fx.storage("h", SIZE), fx.storage("a", SIZE),
            CLUSTER, hiddenCluster, true, QUEUE_DEPTH, CowCopy.MEMORY));
        hangingWire = new HangingDevice(secondary.sink());
        wire = new FaultInjectingDevice(hangingWire);
        primary = fx.owned(new ReplicationPrimary(primaryHandle, wire, true, CLUSTER, FORWARD_TIMEOUT, QUEUE_DEPTH));
        fx.dutyCycle(secondary::doWork);
        fx.dutyCycle(primary::doWork);
        assertTrue(secondary.start(ReplicationMode.SECONDARY).ok());
        assertTrue(primary.start(ReplicationMode.PRIMARY).ok());
    }

    @AfterEach
    void tearDown() throws Exception
    {
        hangingWire.release();
        fx.close();
    }

    @Test
    void ax23_originalsReachHiddenOnceBeforeTheSharedDiskChanges()
    {
        fx.fill(primary, C10 + 4096, 4096, 0x22);
        assertEquals(1, wire.count(Kind.WRITE), "one original shipped");
        assertTrue(secondary.hidden().isAllocated(C10));
        fx.assertBytes(secondary.hidden(), C10, CLUSTER, 0x11);
        fx.assertBytes(secondaryHandle, C10 + 4096, 4096, 0x22);
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);

        fx.fill(primary, C10 + 8192, 4096, 0x23);
        assertEquals(1, wire.count(Kind.WRITE), "a second write to the cluster sends nothing");
        fx.assertBytes(secondary.view(), C10, CLUSTER, 0x11);
        assertEquals(CLUSTER, secondary.hidden().allocatedBytes());

        // the SVM's own writes stay in A; the checkpoint shows the shared disk
        fx.fill(secondary.view(), 0, CLUSTER, 0x33);
        assertTrue(primary.checkpoint(SECOND, deadline -> secondary.checkpoint(deadline - System.nanoTime())
            .result()).ok());
        assertEquals(1, secondary.epoch());
        fx.assertBytes(secondary.view(), 0, CLUSTER, 0x11);
        fx.assertBytes(secondary.view(), C10, 4096, 0x11);
        fx.assertBytes(secondary.view(), C10 + 4096, 4096, 0x22);
        fx.assertBytes(secondary.view(), C10 + 8192, 4096, 0x23);
        fx.assertBytes(secondary.view(), C10 + 12288, CLUSTER - 12288, 0x11);

        // next epoch: the first write to the cluster ships its (new) original again
        fx.fill(primary, C10, CLUSTER, 0x44);
        assertEquals(2, wire.count(Kind.WRITE));
        fx.fill(secondary.view(), 2 * MIB, CLUSTER, 0x55);

        // primary crash, fenced; failover commits A and H into the shared disk
        assertEquals(ControlResult.OK, secondary.stop(true, SECOND));
        assertEquals(0, secondary.awaitFailover(20 * SECOND));
        fx.assertBytes(secondaryHandle, 0, C10, 0x11);
        fx.assertBytes(secondaryHandle, C10, 4096, 0x11);
        fx.assertBytes(secondaryHandle, C10 + 4096, 4096, 0x22);
        fx.assertBytes(secondaryHandle, C10 + 8192, 4096, 0x23);
        fx.assertBytes(secondaryHandle, C10 + 12288, 2 * MIB - C10 - 12288, 0x11);
        fx.assertBytes(secondaryHandle, 2 * MIB, CLUSTER, 0x55);
        fx.assertBytes(secondaryHandle, 2 * MIB + CLUSTER, SIZE - 2 * MIB - CLUSTER, 0x11);
    }

    @Test
    void ax24_hungSecondaryDuringCowForwardStillCompletesTheGuestWrite()
    {
        hangingWire.hang(true);
        final long start = System.nanoTime();
        fx.fill(primary, C10, 4096, 0x24);
        final long took = System.nanoTime() - start;
        assertTrue(took < FORWARD_TIMEOUT + SECOND, "bounded: " + took);
        fx.assertBytes(primaryHandle, C10, 4096, 0x24);
        assertEquals(-Errno.ETIMEDOUT, primary.getError().result());
        assertSame(ReplicationState.DEGRADED, primary.state());
        // no more shipping, the shared disk is written at once
        fx.fill(primary, 20L * CLUSTER, 4096, 0x25);
        fx.assertBytes(primaryHandle, 20L * CLUSTER, 4096, 0x25);
        assertEquals(1, wire.count(Kind.WRITE));
    }

    @Test
    void ax24_failedCowForwardLatchesAndTheWriteStillLands()
    {
        wire.failNth(Kind.WRITE, 1, Errno.EIO);
        fx.fill(primary, C10, 4096, 0x26);
        fx.assertBytes(primaryHandle, C10, 4096, 0x26);
        assertEquals(-Errno.EIO, primary.getError().result());
        assertEquals(PeerLink.REASON_WRITE, primary.latchedError().reason());
        assertFalse(secondary.hidden().isAllocated(C10));
        assertFalse(primary.checkpoint(SECOND).ok());
    }

    @Test
    void sharedSecondaryStopWithoutFailoverReleasesTheSharedDisk()
    {
        fx.fill(primary, C10, CLUSTER, 0x27);
        fx.fill(secondary.view(), 0, CLUSTER, 0x33);
        assertEquals(ControlResult.OK, secondary.stop(false, SECOND));
        assertEquals(0, secondary.active().allocatedBytes());
        assertEquals(0, secondary.hidden().allocatedBytes());
        assertEquals(-Errno.ESHUTDOWN, fx.read(secondary.view(), 0, 4096));
        assertEquals(-Errno.ESHUTDOWN, fx.write(secondary.sink(), 0, CLUSTER, 0x99));
        fx.assertBytes(primaryHandle, 0, CLUSTER, 0x11);
        fx.assertBytes(primaryHandle, C10, CLUSTER, 0x27);
    }
}
