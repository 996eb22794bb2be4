package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.device.FaultInjectingDevice.Kind;
import io.understudy.engine.device.SyncIo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
import static io.understudy.engine.replication.ReplicationFixture.MIB;
import static io.understudy.engine.replication.ReplicationFixture.QUEUE_DEPTH;
import static io.understudy.engine.replication.ReplicationFixture.SECOND;
import static io.understudy.engine.replication.ReplicationFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Non-shared primary forwarding into a real secondary: the "wire" is the secondary's sink handed to the
 * primary as its peer (wrapped in a {@link FaultInjectingDevice} to count and fail forwarded requests).
 * P and S both start as 0x11.
 */
class ReplicationPrimaryTest
{
    private static final long M32 = 32 * MIB;
    private static final long FORWARD_TIMEOUT = TimeUnit.MILLISECONDS.toNanos(1000);

    @TempDir
    Path dir;

    private ReplicationFixture fx;
    private BlockDevice pDisk;
    private FaultInjectingDevice p;
    private BlockDevice sDisk;
    private ReplicationSecondary secondary;
    private FaultInjectingDevice wire;
    private HangingDevice hangingWire;
    private ReplicationPrimary primary;

    @BeforeEach
    void setUp() throws Exception
    {
        fx = new ReplicationFixture(dir);
        pDisk = fx.disk("p.raw", 0x11);
        sDisk = fx.disk("s.raw", 0x11);
        p = new FaultInjectingDevice(pDisk);
        secondary = fx.owned(new ReplicationSecondary(sDisk, fx.storage("h", SIZE), fx.storage("a", SIZE), CLUSTER,
            false, QUEUE_DEPTH));
        hangingWire = new HangingDevice(secondary.sink());
        wire = new FaultInjectingDevice(hangingWire);
        primary = fx.owned(new ReplicationPrimary(p, wire, false, CLUSTER, FORWARD_TIMEOUT, QUEUE_DEPTH));
        fx.dutyCycle(secondary::doWork);
        fx.dutyCycle(primary::doWork);
    }

    @AfterEach
    void tearDown() throws Exception
    {
        hangingWire.release();
        fx.close();
    }

    private void startPair()
    {
        assertEquals(ControlResult.OK, secondary.start(ReplicationMode.SECONDARY));
        assertEquals(ControlResult.OK, primary.start(ReplicationMode.PRIMARY));
    }

    private void checkpointPair()
    {
        final long epoch = secondary.epoch();
        final CheckpointReport report = primary.checkpoint(SECOND,
            deadline -> secondary.checkpoint(deadline - System.nanoTime()).result());
        assertTrue(report.ok(), report.toString());
        assertEquals(epoch + 1, secondary.epoch());
    }

    @Test
    void at01_notStartedPrimaryRefusesIoAndForwardsNothing()
    {
        assertTrue(secondary.start(ReplicationMode.SECONDARY).ok());
        assertEquals(-Errno.EIO, fx.read(primary, 0, 4096));
        assertEquals(-Errno.EIO, SyncIo.run((c, k) -> primary.writeZeroes(0, SIZE, 0, c, k)));
        assertEquals(0, wire.count(Kind.WRITE) + wire.count(Kind.WRITE_ZEROES));
        fx.assertBytes(pDisk, 0, SIZE, 0x11);
        fx.assertBytes(sDisk, 0, SIZE, 0x11);
    }

    /** Our primary is the guest's whole disk (QEMU's quorum + replication child): reads are served from P. */
    @Test
    void at02_startedPrimaryWritesLocallyAndForwardsExactBytes()
    {
        startPair();
        fx.fill(primary, 0, SIZE, 0x22);
        fx.assertBytes(pDisk, 0, SIZE, 0x22);
        fx.assertBytes(sDisk, 0, SIZE, 0x22);
        fx.assertBytes(primary, 0, SIZE, 0x22);
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
        assertEquals(0, wire.count(Kind.READ), "the secondary is never read (INV-P)");
        assertSame(ReplicationState.RUNNING, primary.state());
        assertEquals(SIZE, primary.link().forwardedBytes());
        assertEquals(0, primary.link().unacknowledgedBytes(), "every forwarded write was answered");
    }

    @Test
    void at03_checkpointGetErrorAndStopSucceedThenIoIsRefused()
    {
        startPair();
        assertTrue(primary.checkpoint(SECOND).ok());
        assertEquals(1, primary.checkpoints().count());
        assertTrue(primary.checkpoints().lastNanos() > 0);
        assertEquals(ControlResult.OK, primary.getError());
        assertEquals(ControlResult.OK, primary.stop(false, SECOND));
        assertSame(ReplicationStage.DONE, primary.stage());
        final long forwarded = wire.count(Kind.WRITE);
        assertEquals(-Errno.ESHUTDOWN, fx.write(primary, 0, MIB, 0x23));
        assertEquals(forwarded, wire.count(Kind.WRITE), "nothing forwarded after stop");
        fx.assertBytes(pDisk, 0, SIZE, 0x11);
        fx.assertBytes(sDisk, 0, SIZE, 0x11);
        assertSame(ControlResult.IGNORED, primary.stop(true, SECOND));
    }

    @Test
    void ax04_primaryCrashAfterCheckpointRollsBackItsLastEpoch()
    {
        startPair();
        fx.fill(primary, M32, M32, 0x22);
        fx.fill(secondary.view(), 0, MIB, 0x33);
        checkpointPair();
        fx.fill(primary, 0, M32, 0x44);
        fx.fill(secondary.view(), 16 * MIB, MIB, 0x55);
        // primary lost: failover on the secondary
        assertEquals(ControlResult.OK, secondary.stop(true, SECOND));
        assertEquals(0, secondary.awaitFailover(20 * SECOND));
        fx.assertBytes(sDisk, 0, 16 * MIB, 0x11);
        fx.assertBytes(sDisk, 16 * MIB, MIB, 0x55);
        fx.assertBytes(sDisk, 17 * MIB, 15 * MIB, 0x11);
        fx.assertBytes(sDisk, M32, M32, 0x22);
        assertEquals(-Errno.ESHUTDOWN, fx.write(secondary.sink(), 0, CLUSTER, 0x66), "late forwarded write refused");
    }

    @Test
    void ax05_writeZeroesAndFlushAreForwarded()
    {
        startPair();
        fx.fill(primary, 0, 4 * MIB, 0x22);
        assertEquals(0, SyncIo.run((c, k) -> primary.writeZeroes(2 * MIB, CLUSTER, 0, c, k)));
        assertEquals(0, SyncIo.run((c, k) -> primary.writeZeroes(3 * MIB, CLUSTER, BlockDevice.FLAG_NO_HOLE, c, k)));
        for (final BlockDevice disk : new BlockDevice[]{pDisk, sDisk})
        {
            fx.assertBytes(disk, 2 * MIB - CLUSTER, CLUSTER, 0x22);
            fx.assertBytes(disk, 2 * MIB, CLUSTER, 0x00);
            fx.assertBytes(disk, 2 * MIB + CLUSTER, MIB - CLUSTER, 0x22);
            fx.assertBytes(disk, 3 * MIB, CLUSTER, 0x00);
            fx.assertBytes(disk, 3 * MIB + CLUSTER, MIB - CLUSTER, 0x22);
        }
        assertEquals(2, wire.count(Kind.WRITE_ZEROES));
        final long flushes = wire.count(Kind.FLUSH);
        assertEquals(0, SyncIo.run(primary::flush));
        assertEquals(flushes + 1, wire.count(Kind.FLUSH), "a flush reaches the secondary");
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
    }

    /** AX-06, the choice pinned: a discard is replicated as write-zeroes, both disks then read zeroes. */
    @Test
    void ax06_discardIsReplicatedAsZeroes()
    {
        startPair();
        fx.fill(primary, 4 * MIB, 2 * MIB, 0x22);
        assertEquals(0, SyncIo.run((c, k) -> primary.discard(4 * MIB + CLUSTER, MIB, c, k)));
        assertEquals(1, wire.count(Kind.WRITE_ZEROES));
        assertEquals(0, wire.count(Kind.DISCARD));
        for (final BlockDevice disk : new BlockDevice[]{pDisk, sDisk})
        {
            fx.assertBytes(disk, 4 * MIB, CLUSTER, 0x22);
            fx.assertBytes(disk, 4 * MIB + CLUSTER, MIB, 0x00);
            fx.assertBytes(disk, 5 * MIB + CLUSTER, MIB - CLUSTER, 0x22);
        }
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
    }

    @Test
    void ax18_case2_forwardingErrorDegradesAndNeverResumesSilently()
    {
        startPair();
        fx.fill(primary, 0, CLUSTER, 0x21);
        checkpointPair();
        wire.failNth(Kind.WRITE, 1, Errno.EIO);
        fx.fill(primary, 5 * CLUSTER, CLUSTER, 0x22);
        fx.assertBytes(pDisk, 5 * CLUSTER, CLUSTER, 0x22);
        fx.assertBytes(sDisk, 5 * CLUSTER, CLUSTER, 0x11);
        assertSame(ReplicationState.DEGRADED, primary.state());
        final ControlResult error = primary.getError();
        assertEquals(-Errno.EIO, error.result());
        assertEquals(PeerLink.REASON_WRITE, error.reason());

        // the peer works again, but nothing is forwarded any more: no silent gap
        final long forwarded = wire.count(Kind.WRITE);
        fx.fill(primary, 9 * CLUSTER, CLUSTER, 0x23);
        assertEquals(forwarded, wire.count(Kind.WRITE));
        fx.assertBytes(pDisk, 9 * CLUSTER, CLUSTER, 0x23);
        fx.assertBytes(sDisk, 9 * CLUSTER, CLUSTER, 0x11);
        assertSame(ReplicationState.DEGRADED, primary.state(), "sticky");

        // the dirty bitmap holds exactly the clusters written since the last good checkpoint
        assertEquals(2, primary.dirtyBitmap().cardinality());
        assertTrue(primary.isDirty(5 * CLUSTER));
        assertTrue(primary.isDirty(9 * CLUSTER));
        assertFalse(primary.isDirty(0));
        final CheckpointReport refused = primary.checkpoint(SECOND);
        assertEquals(-Errno.EIO, refused.result());
        assertEquals(ReplicationPrimary.DEGRADED, refused.reason());
        assertEquals(2, primary.dirtyBitmap().cardinality(), "kept for the resync");
    }

    @Test
    void ax19_hungPeerNeverBlocksAGuestWriteBeyondTheDeadline()
    {
        startPair();
        hangingWire.hang(true);
        final long start = System.nanoTime();
        fx.fill(primary, 3 * CLUSTER, CLUSTER, 0x24);
        final long took = System.nanoTime() - start;
        assertTrue(took >= FORWARD_TIMEOUT && took < FORWARD_TIMEOUT + SECOND, "completed at the deadline: " + took);
        fx.assertBytes(pDisk, 3 * CLUSTER, CLUSTER, 0x24);
        assertEquals(-Errno.ETIMEDOUT, primary.getError().result());
        assertEquals(PeerLink.REASON_TIMEOUT, primary.latchedError().reason());
        assertSame(ReplicationState.DEGRADED, primary.state());
        assertEquals(1, primary.link().timeouts());

        // later writes and a checkpoint return at once
        final long next = System.nanoTime();
        fx.fill(primary, 4 * CLUSTER, CLUSTER, 0x25);
        assertFalse(primary.checkpoint(SECOND).ok());
        assertTrue(System.nanoTime() - next < FORWARD_TIMEOUT, "no further waits on the hung peer");
        assertTrue(primary.isDirty(3 * CLUSTER) && primary.isDirty(4 * CLUSTER));

        // the hung request's late answer is ignored
        hangingWire.release();
        assertSame(ReplicationState.DEGRADED, primary.state());
        assertEquals(-Errno.ETIMEDOUT, primary.getError().result());
    }

    @Test
    void ax19_checkpointDrainIsBoundedByTheForwardDeadline()
    {
        startPair();
        hangingWire.hang(true);
        final int[] result = {Integer.MIN_VALUE};
        fx.buffer.asSlice(0, CLUSTER).fill((byte)0x26);
        assertTrue(primary.write(0, fx.buffer, CLUSTER, 0, (c, r) -> result[0] = r, 1));
        final long start = System.nanoTime();
        final CheckpointReport report = primary.checkpoint(5 * SECOND);
        assertTrue(System.nanoTime() - start < 2 * SECOND, report.toString());
        assertEquals(-Errno.EIO, report.result(), report.toString());
        assertEquals(CLUSTER, result[0], "the guest write completed with the local result");
        fx.assertBytes(pDisk, 0, CLUSTER, 0x26);
    }

    @Test
    void ax19_peerRefusingBeyondTheDeadlineDegradesThePair()
    {
        startPair();
        hangingWire.refuse(true);
        final long start = System.nanoTime();
        fx.fill(primary, 6 * CLUSTER, CLUSTER, 0x2a);
        final long took = System.nanoTime() - start;
        assertTrue(took >= FORWARD_TIMEOUT && took < FORWARD_TIMEOUT + SECOND, "completed at the deadline: " + took);
        fx.assertBytes(pDisk, 6 * CLUSTER, CLUSTER, 0x2a);
        fx.assertBytes(sDisk, 6 * CLUSTER, CLUSTER, 0x11);
        assertEquals(-Errno.ETIMEDOUT, primary.getError().result());
        assertEquals(PeerLink.REASON_REFUSED, primary.latchedError().reason());
        assertSame(ReplicationState.DEGRADED, primary.state());
        hangingWire.refuse(false);
        final long forwarded = wire.count(Kind.WRITE);
        fx.fill(primary, 7 * CLUSTER, CLUSTER, 0x2b);
        assertEquals(forwarded, wire.count(Kind.WRITE), "no silent resumption");
    }

    @Test
    void failedPeerCheckpointChangesNothingOnThePrimary()
    {
        startPair();
        fx.fill(primary, 0, CLUSTER, 0x2c);
        final CheckpointReport report = primary.checkpoint(SECOND, deadline -> -Errno.ETIMEDOUT);
        assertEquals(-Errno.ETIMEDOUT, report.result());
        assertEquals(0, primary.epoch());
        assertTrue(primary.isDirty(0), "the dirty bitmap still covers the failed epoch");
        assertSame(ReplicationState.RUNNING, primary.state(), "retryable");
        fx.fill(primary, CLUSTER, CLUSTER, 0x2d);
        fx.assertBytes(sDisk, CLUSTER, CLUSTER, 0x2d);
    }

    @Test
    void ax08_primaryLifecycleMatrix()
    {
        assertEquals("ignored", primary.checkpoint(SECOND).reason(), "primary checkpoint before start: no-op");
        assertEquals(-Errno.EIO, primary.getError().result(), "get_error before start");
        assertEquals(-Errno.EIO, primary.stop(true, SECOND).result(), "stop before start");
        assertEquals(-Errno.EINVAL, primary.start(ReplicationMode.SECONDARY).result(), "wrong mode");
        assertSame(ReplicationStage.NONE, primary.stage());
        assertSame(ReplicationState.NONE, primary.state());
        startPair();
        assertEquals(-Errno.EBUSY, primary.start(ReplicationMode.PRIMARY).result(), "start twice");
        assertSame(ReplicationState.RUNNING, primary.state());
        assertEquals(ControlResult.OK, primary.stop(true, SECOND));
        assertSame(ReplicationState.DONE, primary.state());
        assertSame(ControlResult.IGNORED, primary.start(ReplicationMode.PRIMARY), "continuous replication");
        assertSame(ControlResult.IGNORED, primary.stop(false, SECOND));
    }

    @Test
    void ax20_case1_localDiskErrorsReachTheGuest()
    {
        startPair();
        p.failNth(Kind.READ, 1, Errno.EIO);
        assertEquals(-Errno.EIO, fx.read(primary, 0, CLUSTER));
        assertSame(ReplicationState.RUNNING, primary.state(), "a failed read changes no disk: still in step");
        assertNull(primary.latchedError());

        p.failNth(Kind.WRITE, 1, Errno.EIO);
        assertEquals(-Errno.EIO, fx.write(primary, 0, CLUSTER, 0x27));
        // The forwarded twin runs concurrently and may land (here the injected error completes first, so the
        // degraded link drops it): either way the pair must not go on as if in step, because a checkpoint
        // would clear the dirty bit over a possible difference.
        fx.assertBytes(pDisk, 0, CLUSTER, 0x11);
        fx.assertBytes(sDisk, CLUSTER, SIZE - CLUSTER, 0x11);
        assertSame(ReplicationState.DEGRADED, primary.state());
        assertNotNull(primary.latchedError());
        assertTrue(primary.isDirty(0));
        assertFalse(primary.checkpoint(SECOND).ok(), "a degraded pair refuses checkpoints");
        assertTrue(primary.isDirty(0), "the difference stays marked for the resync");
    }

    @Test
    void failoverOnPrimaryServesAloneAndKeepsTheDirtyBitmap()
    {
        startPair();
        fx.fill(primary, 0, CLUSTER, 0x28);
        assertEquals(ControlResult.OK, primary.stop(true, SECOND));
        assertSame(ReplicationStage.DONE, primary.stage());
        final long forwarded = wire.count(Kind.WRITE);
        fx.fill(primary, 7 * CLUSTER, CLUSTER, 0x29);
        assertEquals(forwarded, wire.count(Kind.WRITE), "the peer is dropped");
        fx.assertBytes(primary, 7 * CLUSTER, CLUSTER, 0x29);
        fx.assertBytes(sDisk, 7 * CLUSTER, CLUSTER, 0x11);
        assertTrue(primary.isDirty(0) && primary.isDirty(7 * CLUSTER));
        assertEquals(2, primary.dirtyBitmap().cardinality());
        assertEquals("ignored", primary.checkpoint(SECOND).reason());
    }

    @Test
    void dirtyBitmapIsResetByASuccessfulCheckpoint()
    {
        startPair();
        fx.fill(primary, 0, 3 * CLUSTER + 1, 0x30);
        assertEquals(4, primary.dirtyBitmap().cardinality());
        checkpointPair();
        assertEquals(0, primary.dirtyBitmap().cardinality());
        assertEquals(1, primary.epoch());
        fx.fill(primary, SIZE - 1, 1, 0x31);
        assertTrue(primary.isDirty(SIZE - 1));
        assertEquals(1, primary.dirtyBitmap().cardinality());
    }
}
