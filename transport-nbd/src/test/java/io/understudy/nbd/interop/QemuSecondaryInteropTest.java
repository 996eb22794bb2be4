package io.understudy.nbd.interop;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.nbd.client.NbdClientDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static io.understudy.nbd.interop.InteropFixture.CLUSTER;
import static io.understudy.nbd.interop.InteropFixture.MIB;
import static io.understudy.nbd.interop.InteropFixture.QUEUE_DEPTH;
import static io.understudy.nbd.interop.InteropFixture.SECOND;
import static io.understudy.nbd.interop.InteropFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Understudy as the primary, QEMU 7.2 as the secondary (spec 7, consequence 1; the E3 sequence of spec 3.1 with
 * our primary in place of QEMU's). QEMU ({@code -M none}, no guest) is set up exactly as spec 7's secondary:
 * sec.raw (0x11) under a {@code replication mode=secondary} node {@code childs1} over active/hidden qcow2, NBD
 * export {@code colo1} of sec.raw for the forwarded writes and {@code svm} of {@code childs1} for reading the SVM
 * view. Our {@link ReplicationPrimary} over prim.raw forwards through an {@link NbdClientDevice} to
 * {@code colo1}; its checkpoint drains and flushes the forwarded writes and then, as its peer's part, calls
 * QEMU's {@code xen-colo-do-checkpoint}. SVM writes are HMP {@code qemu-io childs1}.
 */
class QemuSecondaryInteropTest
{
    private static final long M32 = 32 * MIB;
    private static final long ZERO_AT = 40 * MIB;
    private static final long ZERO_NO_HOLE_AT = 48 * MIB;
    private static final int PORT_ATTEMPTS = 5;

    @TempDir
    Path dir;

    private InteropFixture fx;
    private Path sec;
    private Qemu qemu;
    private int port;
    private NbdClientDevice peer;

    @BeforeEach
    void setUp() throws Exception
    {
        Qemu.require(Qemu.BINARY, "qemu-system-x86");
        Qemu.require("qemu-img", "qemu-utils");
        fx = new InteropFixture(dir);
        sec = fx.file("sec.raw", 0x11);
        fx.tool("qemu-img", "create", "-q", "-f", "qcow2", "active.qcow2", Long.toString(SIZE));
        fx.tool("qemu-img", "create", "-q", "-f", "qcow2", "hidden.qcow2", Long.toString(SIZE));
        qemu = Qemu.start(dir, "secondary", List.of(
            "if=none,driver=raw,file.filename=" + sec + ",id=colo1",
            "if=none,id=childs1,driver=replication,mode=secondary,top-id=childs1,file.driver=qcow2," +
                "file.file.filename=active.qcow2,file.backing.driver=qcow2," +
                "file.backing.file.filename=hidden.qcow2,file.backing.backing=colo1"));
        final Qmp qmp = qemu.qmp();
        port = startNbdServer(qmp);
        qmp.execute("nbd-server-add", "{\"device\":\"colo1\",\"writable\":true}");
        qmp.execute("nbd-server-add", "{\"device\":\"childs1\",\"name\":\"svm\",\"writable\":true}");
        qmp.execute("xen-set-replication", "{\"enable\":true,\"primary\":false}");
        assertEquals(Map.of("error", false), qmp.execute("query-xen-replication-status"));
    }

    @AfterEach
    void tearDown() throws Exception
    {
        try
        {
            if (qemu != null)
            {
                qemu.close();
            }
        }
        finally
        {
            fx.close();
        }
    }

    /** QEMU 7.2 cannot report the port it bound: pick a free one, and another if it was taken meanwhile. */
    private static int startNbdServer(final Qmp qmp) throws IOException
    {
        final List<Object> errors = new ArrayList<>();
        for (int attempt = 0; attempt < PORT_ATTEMPTS; attempt++)
        {
            final int candidate;
            try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress()))
            {
                candidate = probe.getLocalPort();
            }
            final Map<String, Object> reply = qmp.send("nbd-server-start", "{\"addr\":{\"type\":\"inet\",\"data\":" +
                "{\"host\":\"127.0.0.1\",\"port\":\"" + candidate + "\"}}}");
            if (reply.containsKey("return"))
            {
                return candidate;
            }
            errors.add(reply.get("error"));
        }
        return fail("nbd-server-start failed " + PORT_ATTEMPTS + " times: " + errors);
    }

    /** Our primary over {@code prim}, forwarding to QEMU's {@code colo1}, started. */
    private ReplicationPrimary startPrimary(final Path prim) throws IOException
    {
        peer = fx.owned(NbdClientDevice.connect(new InetSocketAddress("127.0.0.1", port), "colo1"));
        assertEquals(SIZE, peer.size());
        final ReplicationPrimary primary = fx.owned(new ReplicationPrimary(fx.open(prim), peer, false, CLUSTER,
            5 * SECOND, QUEUE_DEPTH));
        fx.dutyCycle(primary::doWork);
        assertEquals(ControlResult.OK, primary.start(ReplicationMode.PRIMARY));
        return primary;
    }

    private void guestWrite(final BlockDevice primary, final long offset, final long length, final int pattern)
    {
        fx.fill(primary, offset, length, pattern);
    }

    private void svmWrite(final long offset, final long length, final int pattern) throws IOException
    {
        qemu.qemuIo("childs1", String.format("write -P 0x%02x %d %d", pattern, offset, length),
            "wrote " + length + "/" + length + " bytes at offset " + offset);
    }

    /** Polls {@code query-xen-replication-status} until it is clean; returns every distinct status seen. */
    private List<Object> awaitCleanStatus()
    {
        final List<Object> seen = new ArrayList<>();
        final long deadline = System.nanoTime() + 10 * SECOND;
        while (true)
        {
            final Object status = qemu.qmp().execute("query-xen-replication-status");
            if (seen.isEmpty() || !seen.getLast().equals(status))
            {
                seen.add(status);
            }
            if (status.equals(Map.of("error", false)))
            {
                return seen;
            }
            if (System.nanoTime() - deadline > 0)
            {
                return fail("the failover commit did not finish within 10 s: " + seen);
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
        }
    }

    /**
     * Spec 3.1 E3 (AX-04) with our primary, plus AX-05 in the first epoch: guest 0x22 [32M,64M), write-zeroes at
     * 40M (may punch a hole) and 48M (NO_HOLE); SVM 0x33 [0,1M); checkpoint; guest 0x44 [0,32M); SVM 0x55
     * [16M,17M); our primary dies (link closed); QEMU fails over. sec.raw must then be QEMU's SVM view: the
     * checkpointed primary data plus the current epoch's SVM write.
     */
    @Test
    @Timeout(60)
    void ourPrimaryDiesThenQemuSecondaryFailsOver() throws Exception
    {
        final Path prim = fx.file("prim.raw", 0x11);
        final ReplicationPrimary primary = startPrimary(prim);

        guestWrite(primary, M32, M32, 0x22);
        assertEquals(0, InteropFixture.run((c, k) -> primary.writeZeroes(ZERO_AT, CLUSTER, 0, c, k)));
        assertEquals(0, InteropFixture.run((c, k) -> primary.writeZeroes(ZERO_NO_HOLE_AT, CLUSTER,
            BlockDevice.FLAG_NO_HOLE, c, k)));
        final Layout epoch0 = Layout.filled(SIZE, 0x11).paint(M32, M32, 0x22).paint(ZERO_AT, CLUSTER, 0)
            .paint(ZERO_NO_HOLE_AT, CLUSTER, 0);
        epoch0.assertFile(sec, "forwarded writes land in sec.raw");
        svmWrite(0, MIB, 0x33);

        final Qmp qmp = qemu.qmp();
        final CheckpointReport checkpoint = primary.checkpoint(5 * SECOND, deadline ->
        {
            qmp.execute("xen-colo-do-checkpoint");
            return 0;
        });
        assertTrue(checkpoint.ok(), checkpoint.toString());
        assertEquals(1, primary.epoch());

        guestWrite(primary, 0, M32, 0x44);
        svmWrite(16 * MIB, MIB, 0x55);
        epoch0.paint(0, M32, 0x44).assertFile(prim, "the primary's disk");
        epoch0.assertFile(sec, "sec.raw holds the primary's writes of the unfinished epoch");

        final Layout expected = Layout.filled(SIZE, 0x11).paint(16 * MIB, MIB, 0x55).paint(M32, M32, 0x22)
            .paint(ZERO_AT, CLUSTER, 0).paint(ZERO_NO_HOLE_AT, CLUSTER, 0);
        try (NbdClientDevice svm = NbdClientDevice.connect(new InetSocketAddress("127.0.0.1", port), "svm"))
        {
            expected.assertDevice(svm, "nbd://127.0.0.1:" + port + "/svm", "QEMU's SVM view before failover");
        }

        peer.close();
        qmp.execute("nbd-server-stop");
        assertEquals(Map.of("error", false), qmp.execute("query-xen-replication-status"));
        qmp.execute("xen-set-replication", "{\"enable\":false,\"primary\":false,\"failover\":true}");
        // Spec 3.1 quirk: cancelling the backup job latches EIO until the commit ends; we may or may not catch it.
        final List<Object> statuses = awaitCleanStatus();
        final List<Object> allowed = List.of(Map.of("error", true, "desc", "I/O error occurred"),
            Map.of("error", false));
        assertTrue(allowed.containsAll(statuses), "replication status during QEMU's failover: " + statuses);
        qemu.quit();

        expected.assertFile(sec, "sec.raw after QEMU's failover (spec 3.1 E3)");
    }

    /**
     * AX-18 with a real peer crash: QEMU (the secondary) is SIGKILLed; the next guest write still succeeds on the
     * primary's disk, the pair is degraded with the error latched and the cluster marked dirty, and a
     * checkpoint is refused. sec.raw keeps exactly what was forwarded before the crash.
     */
    @Test
    @Timeout(60)
    void qemuSecondaryDiesAndOurPrimaryDegrades() throws Exception
    {
        final Path prim = fx.file("prim.raw", 0x11);
        final ReplicationPrimary primary = startPrimary(prim);
        guestWrite(primary, 0, MIB, 0x22);
        assertTrue(primary.checkpoint(5 * SECOND, deadline ->
        {
            qemu.qmp().execute("xen-colo-do-checkpoint");
            return 0;
        }).ok());
        assertFalse(primary.isDirty(0), "the checkpoint cleared the dirty bitmap");

        qemu.kill();
        guestWrite(primary, MIB, MIB, 0x33);
        assertTrue(primary.isDegraded());
        assertFalse(primary.getError().ok(), "the peer's loss is latched: " + primary.getError());
        assertTrue(primary.isDirty(MIB), "the cluster written after the crash is dirty (resync)");
        assertFalse(primary.isDirty(0));
        final CheckpointReport refused = primary.checkpoint(SECOND);
        assertEquals(-Errno.EIO, refused.result(), refused.toString());

        Layout.filled(SIZE, 0x11).paint(0, MIB, 0x22).paint(MIB, MIB, 0x33).assertFile(prim, "the primary's disk");
        Layout.filled(SIZE, 0x11).paint(0, MIB, 0x22).assertFile(sec, "sec.raw after QEMU's crash");
    }
}
