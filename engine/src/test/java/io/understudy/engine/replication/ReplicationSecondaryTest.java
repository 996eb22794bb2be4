package io.understudy.engine.replication;

import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.device.FaultInjectingDevice.Kind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
import static io.understudy.engine.replication.ReplicationFixture.MIB;
import static io.understudy.engine.replication.ReplicationFixture.QUEUE_DEPTH;
import static io.understudy.engine.replication.ReplicationFixture.SECOND;
import static io.understudy.engine.replication.ReplicationFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Non-shared secondary: the acceptance scenarios of spec 4.2 at engine level (S = 0x11 at start, "fwd-write" =
 * a write into {@link ReplicationSecondary#sink()}, "top" = {@link ReplicationSecondary#view()}), the gating
 * and operation matrix of spec 2.2, and AX-07. Each runs with H's clusters as large as A's (as QEMU) and with
 * 4 KiB ones, where the COW copies only the 4 KiB blocks a write touches.
 */
@ParameterizedClass(name = "H clusters of {0} bytes")
@ValueSource(ints = {CLUSTER, 4096})
class ReplicationSecondaryTest
{
    private static final long M32 = 32 * MIB;

    private final int hiddenCluster;

    @TempDir
    Path dir;

    private ReplicationFixture fx;
    private BlockDevice disk;
    private FaultInjectingDevice s;
    private ReplicationSecondary secondary;

    ReplicationSecondaryTest(final int hiddenCluster)
    {
        this.hiddenCluster = hiddenCluster;
    }

    @BeforeEach
    void setUp() throws Exception
    {
        fx = new ReplicationFixture(dir);
        disk = fx.disk("s.raw", 0x11);
        s = new FaultInjectingDevice(disk);
        secondary = fx.owned(new ReplicationSecondary(s, fx.storage("h", SIZE), fx.storage("a", SIZE), CLUSTER,
            hiddenCluster, false, QUEUE_DEPTH, CowCopy.MEMORY));
        fx.dutyCycle(secondary::doWork);
    }

    @AfterEach
    void tearDown() throws Exception
    {
        fx.close();
    }

    private void start()
    {
        assertEquals(ControlResult.OK, secondary.start(ReplicationMode.SECONDARY));
        assertSame(ReplicationStage.RUNNING, secondary.stage());
    }

    /** AT-05's state: fwd-write 0x22 [32M,64M), top-write 0x33 [0,32M). */
    private void at05State()
    {
        start();
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
        fx.fill(secondary.sink(), M32, M32, 0x22);
        fx.assertBytes(secondary.view(), M32, M32, 0x11);
        fx.assertBytes(disk, M32, M32, 0x22);
        fx.fill(secondary.view(), 0, M32, 0x33);
        fx.assertBytes(secondary.view(), 0, M32, 0x33);
        fx.assertBytes(disk, 0, M32, 0x11);
    }

    private void failoverAndWait()
    {
        assertEquals(ControlResult.OK, secondary.stop(true, SECOND));
        assertEquals(0, secondary.awaitFailover(20 * SECOND));
        assertSame(ReplicationStage.DONE, secondary.stage());
    }

    @Test
    void at04_notStartedSecondaryRefusesTopIo()
    {
        assertEquals(-Errno.EIO, fx.read(secondary.view(), 0, 4096));
        assertEquals(-Errno.EIO, fx.write(secondary.view(), 0, SIZE, 0));
        fx.assertBytes(disk, 0, SIZE, 0x11);
        assertSame(ReplicationState.NONE, secondary.state());
    }

    @Test
    void ax09_forwardedWriteBeforeStartIsRejected()
    {
        assertEquals(-Errno.EIO, fx.write(secondary.sink(), 0, MIB, 0x21));
        fx.assertBytes(disk, 0, SIZE, 0x11);
        start();
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
    }

    @Test
    void at05_forwardedWritesAreCowedAndInvisibleToTheSvm()
    {
        at05State();
        assertEquals(M32, secondary.hidden().allocatedBytes(), "exactly the forwarded range was COWed into H");
        assertEquals(M32, secondary.active().allocatedBytes());
        fx.assertBytes(secondary.hidden(), 0, SIZE, 0x11);
    }

    @Test
    void at06_failoverRollsBackPrimaryEpoch()
    {
        at05State();
        final long start = System.nanoTime();
        failoverAndWait();
        System.out.printf("AT-06: failover commit of %d MiB took %d ms%n", secondary.commitTotalBytes() >> 20,
            (System.nanoTime() - start) / 1_000_000);
        fx.assertBytes(secondary.view(), 0, M32, 0x33);
        fx.assertBytes(secondary.view(), M32, M32, 0x11);
        fx.assertBytes(disk, 0, M32, 0x33);
        fx.assertBytes(disk, M32, M32, 0x11);
        assertEquals(SIZE, secondary.committedBytes());
        assertEquals(SIZE, secondary.commitTotalBytes());
        assertEquals(ControlResult.OK, secondary.getError(), "no spurious latch on failover (spec 3.1)");
        assertSame(ReplicationState.DONE, secondary.state());
        // after failover the SVM writes S directly
        fx.fill(secondary.view(), 0, CLUSTER, 0x5a);
        fx.assertBytes(disk, 0, CLUSTER, 0x5a);
    }

    @Test
    void at07_controlAfterFailoverIsAcceptedWithoutEffect()
    {
        at05State();
        assertEquals(ControlResult.OK, secondary.stop(true, SECOND));
        // possibly still committing: every request is an accepted no-op
        assertTrue(secondary.start(ReplicationMode.PRIMARY).ok());
        assertTrue(secondary.checkpoint(SECOND).ok());
        assertTrue(secondary.stop(true, SECOND).ok());
        assertEquals(0, secondary.awaitFailover(20 * SECOND));
        assertSame(ControlResult.IGNORED, secondary.start(ReplicationMode.PRIMARY));
        assertEquals("ignored", secondary.checkpoint(SECOND).reason());
        assertSame(ControlResult.IGNORED, secondary.stop(true, SECOND));
        assertSame(ControlResult.IGNORED, secondary.stop(false, SECOND));
        fx.assertBytes(disk, 0, M32, 0x33);
        fx.assertBytes(disk, M32, M32, 0x11);
        fx.assertBytes(secondary.view(), 0, M32, 0x33);
        fx.assertBytes(secondary.view(), M32, M32, 0x11);
    }

    @Test
    void at08_checkpointExposesForwardedWrites()
    {
        start();
        fx.fill(secondary.sink(), M32, M32, 0x22);
        fx.assertBytes(secondary.view(), M32, M32, 0x11);
        final CheckpointReport report = secondary.checkpoint(SECOND);
        assertTrue(report.ok(), report.toString());
        assertEquals(1, report.epoch());
        assertEquals(1, secondary.epoch());
        fx.assertBytes(secondary.view(), M32, M32, 0x22);
        fx.assertBytes(secondary.view(), 0, M32, 0x11);
        assertEquals(0, secondary.hidden().allocatedBytes());
        assertEquals(0, secondary.active().allocatedBytes());
    }

    @Test
    void at09_getErrorIsCleanAndStopSucceeds()
    {
        start();
        assertEquals(ControlResult.OK, secondary.getError());
        assertNull(secondary.latchedError());
        failoverAndWait();
        fx.assertBytes(disk, 0, SIZE, 0x11);
    }

    @Test
    void ax01_cowHappensOncePerEpoch()
    {
        start();
        assertTrue(secondary.checkpoint(SECOND).ok());
        fx.fill(secondary.sink(), MIB + 512, 512, 0x66);
        fx.fill(secondary.sink(), MIB + 4096, 4096, 0x77);
        fx.assertBytes(secondary.view(), MIB, CLUSTER, 0x11);
        fx.assertBytes(disk, MIB, 512, 0x11);
        fx.assertBytes(disk, MIB + 512, 512, 0x66);
        fx.assertBytes(disk, MIB + 1024, 3072, 0x11);
        fx.assertBytes(disk, MIB + 4096, 4096, 0x77);
        fx.assertBytes(disk, MIB + 8192, CLUSTER - 8192, 0x11);
        assertEquals(Math.max(8192, hiddenCluster), secondary.hidden().allocatedBytes(),
            "the H clusters written, each copied once");
        fx.assertBytes(secondary.hidden(), MIB, CLUSTER, 0x11);
    }

    @Test
    void ax02_svmDataShadowsCow()
    {
        start();
        fx.fill(secondary.view(), 0, CLUSTER, 0x33);
        fx.fill(secondary.sink(), 0, CLUSTER, 0x44);
        fx.assertBytes(secondary.view(), 0, CLUSTER, 0x33);
        fx.assertBytes(secondary.hidden(), 0, CLUSTER, 0x11);
        assertTrue(secondary.checkpoint(SECOND).ok());
        fx.assertBytes(secondary.view(), 0, CLUSTER, 0x44);
    }

    @Test
    void ax03_checkpointDropsSvmWrites()
    {
        start();
        fx.fill(secondary.view(), 0, M32, 0x33);
        assertTrue(secondary.checkpoint(SECOND).ok());
        fx.assertBytes(secondary.view(), 0, SIZE, 0x11);
        fx.assertBytes(disk, 0, SIZE, 0x11);
    }

    @Test
    void ax07_stopWithoutFailoverEmptiesBothOverlays()
    {
        at05State();
        assertTrue(secondary.active().allocatedBytes() > 0);
        assertTrue(secondary.hidden().allocatedBytes() > 0);
        assertEquals(ControlResult.OK, secondary.stop(false, SECOND));
        assertSame(ReplicationStage.DONE, secondary.stage());
        assertEquals(0, secondary.active().allocatedBytes());
        assertEquals(0, secondary.hidden().allocatedBytes());
        assertEquals(ControlResult.OK, secondary.getError());
        fx.assertBytes(disk, 0, M32, 0x11);
        fx.assertBytes(disk, M32, M32, 0x22);
        fx.assertBytes(secondary.view(), 0, M32, 0x11);
        fx.assertBytes(secondary.view(), M32, M32, 0x22);
        assertEquals(-Errno.ESHUTDOWN, fx.write(secondary.sink(), 0, CLUSTER, 0x99));
        // later SVM writes go to S, not into an overlay
        fx.fill(secondary.view(), 0, CLUSTER, 0x5a);
        fx.assertBytes(disk, 0, CLUSTER, 0x5a);
        assertEquals(0, secondary.active().allocatedBytes());
    }

    @Test
    void ax08_lifecycleErrors() throws Exception
    {
        assertEquals(-Errno.EIO, secondary.checkpoint(SECOND).result(), "checkpoint before start");
        assertEquals(-Errno.EIO, secondary.getError().result(), "get_error before start");
        assertEquals(ReplicationSecondary.NOT_RUNNING, secondary.getError().reason());
        assertEquals(-Errno.EIO, secondary.stop(false, SECOND).result(), "stop before start");
        assertEquals(-Errno.EIO, secondary.stop(true, SECOND).result(), "failover before start");
        assertEquals(-Errno.EINVAL, secondary.start(ReplicationMode.PRIMARY).result(), "wrong mode");
        assertSame(ReplicationStage.NONE, secondary.stage());
        start();
        assertEquals(-Errno.EBUSY, secondary.start(ReplicationMode.SECONDARY).result(), "start twice");

        try (ReplicationSecondary shortHidden = new ReplicationSecondary(disk, fx.storage("h2", SIZE - CLUSTER),
            fx.storage("a2", SIZE), CLUSTER, hiddenCluster, false, QUEUE_DEPTH, CowCopy.MEMORY))
        {
            final ControlResult result = shortHidden.start(ReplicationMode.SECONDARY);
            assertEquals(-Errno.EINVAL, result.result(), result.toString());
            assertSame(ReplicationStage.NONE, shortHidden.stage());
            assertEquals(-Errno.EIO, fx.read(shortHidden.view(), 0, 4096));
        }
    }

    @Test
    void hiddenClustersMustBeAPowerOfTwoNoLargerThanTheClusterSize() throws Exception
    {
        for (final int refused : new int[] {2 * CLUSTER, 3 * 4096, 2048})
        {
            try (ReplicationSecondary odd = new ReplicationSecondary(disk, fx.storage("h-" + refused, SIZE),
                fx.storage("a-" + refused, SIZE), CLUSTER, refused, false, QUEUE_DEPTH, CowCopy.MEMORY))
            {
                final ControlResult result = odd.start(ReplicationMode.SECONDARY);
                assertEquals(-Errno.EINVAL, result.result(), refused + ": " + result);
                assertTrue(result.reason().contains("hidden cluster size"), result.reason());
            }
        }
    }

    @Test
    void ax16_forwardedWritesAfterFailoverAreRefused()
    {
        at05State();
        failoverAndWait();
        assertEquals(-Errno.ESHUTDOWN, fx.write(secondary.sink(), 0, MIB, 0x99));
        fx.assertBytes(disk, 0, M32, 0x33);
        fx.assertBytes(disk, M32, M32, 0x11);
    }

    @Test
    void ax17_case7_commitFailureLatchesAndKeepsTheSvmConsistent()
    {
        at05State();
        s.failFrom(Kind.WRITE, 3, Errno.EIO);
        assertEquals(ControlResult.OK, secondary.stop(true, SECOND));
        assertEquals(-Errno.EIO, secondary.awaitFailover(20 * SECOND));
        assertSame(ReplicationStage.FAILOVER_FAILED, secondary.stage());
        assertSame(ReplicationState.FAILOVER_FAILED, secondary.state());
        final ControlResult error = secondary.getError();
        assertEquals(-Errno.EIO, error.result());
        assertTrue(error.reason().contains("failover commit"), error.reason());
        // the SVM view is exactly the failover state, and SVM writes keep landing in A
        fx.assertBytes(secondary.view(), 0, M32, 0x33);
        fx.assertBytes(secondary.view(), M32, M32, 0x11);
        final long before = s.count(Kind.WRITE);
        fx.fill(secondary.view(), M32, CLUSTER, 0x55);
        assertEquals(before, s.count(Kind.WRITE), "nothing written to S");
        fx.assertBytes(secondary.view(), M32, CLUSTER, 0x55);
        assertTrue(secondary.active().isAllocated(M32));
        // matrix: checkpoint and stop error in FAILOVER_FAILED
        assertFalse(secondary.checkpoint(SECOND).ok());
        assertFalse(secondary.stop(true, SECOND).ok());
        assertEquals(-Errno.EBUSY, secondary.start(ReplicationMode.SECONDARY).result());
    }

    @Test
    void ax12_checkpointWaitsForForwardedWritesAndTimesOutCleanly() throws Exception
    {
        final BlockDevice hangingDisk = fx.disk("s2.raw", 0x11);
        final HangingDevice hanging = new HangingDevice(hangingDisk);
        try (ReplicationSecondary hung = new ReplicationSecondary(hanging, fx.storage("h3", SIZE),
            fx.storage("a3", SIZE), CLUSTER, hiddenCluster, false, QUEUE_DEPTH, CowCopy.MEMORY))
        {
            assertTrue(hung.start(ReplicationMode.SECONDARY).ok());
            fx.fill(hung.view(), 0, CLUSTER, 0x33);
            hanging.hang(true);
            final int[] result = {Integer.MIN_VALUE};
            assertTrue(hung.sink().write(CLUSTER, fx.buffer, CLUSTER, 0, (c, r) -> result[0] = r, 7));
            final long start = System.nanoTime();
            final CheckpointReport report = hung.checkpoint(SECOND / 5);
            final long took = System.nanoTime() - start;
            assertEquals(-Errno.ETIMEDOUT, report.result(), report.toString());
            assertTrue(took < SECOND, "deadline honoured: " + took);
            assertEquals(0, hung.epoch(), "nothing changed");
            assertTrue(hung.active().isAllocated(0), "A not emptied under a write in flight");
            assertNull(hung.latchedError(), "a missed drain deadline is retryable, not latched");
            fx.assertBytes(hung.view(), 0, CLUSTER, 0x33);
            hanging.hang(false);
            hanging.release();
            assertEquals(-Errno.ESHUTDOWN, result[0]);
            assertTrue(hung.checkpoint(SECOND).ok());
            fx.assertBytes(hung.view(), 0, CLUSTER, 0x11);
        }
    }

    @Test
    void ax15_secondStopDuringCommitIsIgnoredAndHeldSvmWritesLandInS()
    {
        at05State();
        assertEquals(ControlResult.OK, secondary.stop(true, SECOND));
        assertSame(ControlResult.IGNORED, secondary.stop(true, SECOND));
        // an SVM write submitted during the commit waits for it, then lands in S
        fx.fill(secondary.view(), M32 + MIB, MIB, 0x56);
        assertEquals(0, secondary.awaitFailover(20 * SECOND));
        fx.assertBytes(disk, 0, M32, 0x33);
        fx.assertBytes(disk, M32, MIB, 0x11);
        fx.assertBytes(disk, M32 + MIB, MIB, 0x56);
        fx.assertBytes(disk, M32 + 2 * MIB, M32 - 2 * MIB, 0x11);
    }
}
