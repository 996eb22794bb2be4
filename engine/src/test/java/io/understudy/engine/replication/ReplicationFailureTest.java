package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.DelayedReadDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.device.FaultInjectingDevice.Kind;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.overlay.FileOverlayStorage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
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
 * The internal failure cases of spec 3.4 not covered elsewhere (case 1: {@code ReplicationPrimaryTest
 * .ax20_case1_...}, case 2: {@code ReplicationPrimaryTest.ax18_case2_...}, case 7:
 * {@code ReplicationSecondaryTest.ax17_case7_...}), each injected with {@link FaultInjectingDevice} on a real
 * pair: the secondary disk S, the active overlay's storage file A.
 */
class ReplicationFailureTest
{
    private static final long FORWARD_TIMEOUT = TimeUnit.MILLISECONDS.toNanos(1000);
    private static final long C4 = 4L * CLUSTER;

    @TempDir
    Path dir;

    private ReplicationFixture fx;
    private BlockDevice pDisk;
    private BlockDevice sDisk;
    private FaultInjectingDevice s;
    private FaultInjectingDevice aFile;
    private ReplicationSecondary secondary;
    private ReplicationPrimary primary;

    @BeforeEach
    void setUp() throws Exception
    {
        fx = new ReplicationFixture(dir);
        pDisk = fx.disk("p.raw", 0x11);
        sDisk = fx.disk("s.raw", 0x11);
        s = new FaultInjectingDevice(sDisk);
        final Path aPath = dir.resolve("a");
        try (RandomAccessFile raf = new RandomAccessFile(aPath.toFile(), "rw"))
        {
            raf.setLength(SIZE);
        }
        aFile = new FaultInjectingDevice(fx.engine.open(aPath, FileOptions.readWrite()));
        secondary = fx.owned(new ReplicationSecondary(s, fx.storage("h", SIZE), new FileOverlayStorage(aFile),
            CLUSTER, false, QUEUE_DEPTH));
        primary = fx.owned(new ReplicationPrimary(pDisk, secondary.sink(), false, CLUSTER, FORWARD_TIMEOUT,
            QUEUE_DEPTH));
        fx.dutyCycle(secondary::doWork);
        fx.dutyCycle(primary::doWork);
        assertTrue(secondary.start(ReplicationMode.SECONDARY).ok());
        assertTrue(primary.start(ReplicationMode.PRIMARY).ok());
    }

    @AfterEach
    void tearDown() throws Exception
    {
        fx.close();
    }

    @Test
    void case3_cowCopyFailureFailsTheForwardedWriteAndDegradesThePrimary()
    {
        s.failNth(Kind.READ, 1, Errno.EIO);
        fx.fill(primary, C4 + 512, 4096, 0x22);
        fx.assertBytes(pDisk, C4 + 512, 4096, 0x22);
        fx.assertBytes(sDisk, 0, SIZE, 0x11);
        assertEquals(0, s.count(Kind.WRITE), "nothing of the write reached S");
        assertFalse(secondary.hidden().isAllocated(C4));
        assertEquals(-Errno.EIO, primary.getError().result());
        assertEquals(PeerLink.REASON_WRITE, primary.latchedError().reason());
        assertSame(ReplicationState.DEGRADED, primary.state());
        assertTrue(primary.isDirty(C4));
        assertSame(ReplicationState.RUNNING, secondary.state(), "the secondary reports the failure to the primary");
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
    }

    @Test
    void case4_secondaryDiskErrorsReachThePrimaryAndTheSvm()
    {
        s.failNth(Kind.WRITE, 1, Errno.EIO);
        fx.fill(primary, C4, CLUSTER, 0x22);
        assertEquals(-Errno.EIO, primary.getError().result());
        fx.assertBytes(sDisk, C4, CLUSTER, 0x11);
        fx.assertBytes(secondary.hidden(), C4, CLUSTER, 0x11);
        fx.assertBytes(secondary.view(), C4, CLUSTER, 0x11);

        // an SVM read falling through to S sees S's error unchanged
        s.failNth(Kind.READ, 1, Errno.EIO);
        assertEquals(-Errno.EIO, fx.read(secondary.view(), 20L * CLUSTER, 4096));
        fx.assertBytes(secondary.view(), 20L * CLUSTER, 4096, 0x11);
    }

    @Test
    void case5_activeDiskErrorIsReturnedToTheSvmUnchanged()
    {
        aFile.failNth(Kind.WRITE, 1, Errno.ENOSPC);
        assertEquals(-Errno.ENOSPC, fx.write(secondary.view(), C4, CLUSTER, 0x33));
        assertFalse(secondary.active().isAllocated(C4));
        fx.assertBytes(secondary.view(), C4, CLUSTER, 0x11);
        assertNull(secondary.latchedError(), "an SVM I/O error is the SVM's, not replication's");
        assertSame(ReplicationState.RUNNING, secondary.state());
        assertSame(ReplicationState.RUNNING, primary.state());
        fx.fill(secondary.view(), C4, CLUSTER, 0x34);
        fx.assertBytes(secondary.view(), C4, CLUSTER, 0x34);

        aFile.failNth(Kind.READ, 1, Errno.EIO);
        assertEquals(-Errno.EIO, fx.read(secondary.view(), C4, 4096));
    }

    /**
     * Case 6: making A (then H) empty fails. Injected with a read issued on the overlay itself, behind the
     * gate's back, held in flight by a slow S: make-empty then refuses with EBUSY. The checkpoint fails, the
     * error is latched, the epoch does not advance.
     */
    @Test
    void case6_makeEmptyFailureFailsTheCheckpointAndLatches() throws Exception
    {
        final BlockDevice slowDisk = fx.disk("s6.raw", 0x11);
        try (DelayedReadDevice slow = new DelayedReadDevice(slowDisk, 400_000, 400_000);
            ReplicationSecondary victim = new ReplicationSecondary(slow, fx.storage("h6", SIZE),
            fx.storage("a6", SIZE), CLUSTER, false, QUEUE_DEPTH))
        {
            assertTrue(victim.start(ReplicationMode.SECONDARY).ok());
            fx.fill(victim.sink(), C4, CLUSTER, 0x22);
            fx.fill(victim.view(), 0, CLUSTER, 0x33);

            // A busy: the checkpoint stops before touching anything else
            final CountDownLatch activeRead = new CountDownLatch(1);
            assertTrue(victim.active().read(8L * CLUSTER, fx.buffer, 4096, (c, r) -> activeRead.countDown(), 0));
            final CheckpointReport onActive = victim.checkpoint(SECOND);
            assertEquals(-Errno.EBUSY, onActive.result(), onActive.toString());
            assertEquals(0, victim.epoch());
            assertTrue(victim.active().isAllocated(0) && victim.hidden().isAllocated(C4), "nothing emptied");
            final ErrorLatch.LatchedError latched = victim.latchedError();
            assertNotNull(latched);
            assertEquals("checkpoint: making the active disk empty failed", latched.reason());
            assertSame(ReplicationState.DEGRADED, victim.state());
            assertEquals(-Errno.EBUSY, victim.getError().result());
            assertTrue(activeRead.await(5, TimeUnit.SECONDS));

            // H busy: A is emptied, H is not, the first error stays latched
            final CountDownLatch hiddenRead = new CountDownLatch(1);
            assertTrue(victim.hidden().read(8L * CLUSTER, fx.buffer, 4096, (c, r) -> hiddenRead.countDown(), 0));
            final CheckpointReport onHidden = victim.checkpoint(SECOND);
            assertEquals(-Errno.EBUSY, onHidden.result(), onHidden.toString());
            assertEquals(0, victim.epoch());
            assertFalse(victim.active().isAllocated(0));
            assertTrue(victim.hidden().isAllocated(C4));
            assertEquals("checkpoint: making the active disk empty failed", victim.latchedError().reason());
            assertTrue(hiddenRead.await(5, TimeUnit.SECONDS));
            // the view still never shows the primary's epoch
            fx.assertBytes(victim.view(), C4, CLUSTER, 0x11);
        }
    }
}
