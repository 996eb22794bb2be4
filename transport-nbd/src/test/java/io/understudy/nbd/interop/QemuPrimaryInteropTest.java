package io.understudy.nbd.interop;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationSecondary;
import io.understudy.engine.replication.ReplicationStage;
import io.understudy.nbd.protocol.NbdProtocol;
import io.understudy.nbd.server.NbdCounters;
import io.understudy.nbd.server.NbdServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static io.understudy.nbd.interop.InteropFixture.CLUSTER;
import static io.understudy.nbd.interop.InteropFixture.MIB;
import static io.understudy.nbd.interop.InteropFixture.QUEUE_DEPTH;
import static io.understudy.nbd.interop.InteropFixture.SECOND;
import static io.understudy.nbd.interop.InteropFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * QEMU 7.2 as the primary, Understudy as the secondary (spec 7, consequence 2; the E3 sequence of spec 3.1 with
 * our secondary in place of QEMU's). QEMU ({@code -M none}, no guest) has a quorum disk over prim.raw with a
 * {@code replication mode=primary} child on NBD to our {@link ReplicationSecondary#sink()} (export
 * {@code colo1} on TCP); PVM writes are HMP {@code qemu-io} on the quorum, SVM writes are the {@code qemu-io}
 * tool on our {@link ReplicationSecondary#view()} (export {@code svm}, Unix socket). QEMU has no control link:
 * the secondary checkpoints alone, after QEMU's own {@code xen-colo-do-checkpoint}.
 */
class QemuPrimaryInteropTest
{
    private static final long M32 = 32 * MIB;
    private static final long ZERO_AT = 40 * MIB;
    private static final long ZERO_UNMAP_AT = 48 * MIB;
    private static final long DISCARD_AT = 56 * MIB;

    @TempDir
    Path dir;

    private InteropFixture fx;
    private Path s;
    private ReplicationSecondary secondary;
    private NbdServer sinkServer;
    private Path svmSocket;
    private Qemu qemu;

    @BeforeEach
    void setUp() throws Exception
    {
        Qemu.require(Qemu.BINARY, "qemu-system-x86");
        Qemu.require("qemu-io", "qemu-utils");
        fx = new InteropFixture(dir);
        s = fx.file("s.raw", 0x11);
        final BlockDevice disk = fx.open(s);
        secondary = fx.owned(new ReplicationSecondary(disk, fx.storage("h.ovl"), fx.storage("a.ovl"), CLUSTER, false,
            QUEUE_DEPTH));
        fx.dutyCycle(secondary::doWork);
        assertEquals(ControlResult.OK, secondary.start(ReplicationMode.SECONDARY));
        sinkServer = fx.owned(new NbdServer(new NbdServer.Context().exportName("colo1")
            .description("Understudy secondary: forwarded writes").device(secondary.sink())));
        sinkServer.bindTcp("127.0.0.1", 0).start();
        svmSocket = dir.resolve("svm.sock");
        fx.owned(new NbdServer(new NbdServer.Context().exportName("svm").description("Understudy secondary: SVM view")
            .device(secondary.view()))).bindUnix(svmSocket).start();
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

    /** Starts QEMU as the primary and connects its replication child to our sink (spec 7, primary setup). */
    private void startQemuPrimary() throws Exception
    {
        addReplicationChild();
        qemu.qmp().execute("xen-set-replication", "{\"enable\":true,\"primary\":true}");
        assertEquals(Map.of("error", false), qemu.qmp().execute("query-xen-replication-status"));
    }

    /** Starts QEMU with the quorum over prim.raw and adds the replication child on NBD, not yet started. */
    private void addReplicationChild() throws Exception
    {
        final Path prim = fx.file("prim.raw", 0x11);
        qemu = Qemu.start(dir, "primary", List.of("if=none,id=colo1,driver=quorum,read-pattern=fifo," +
            "vote-threshold=1,children.0.file.filename=" + prim + ",children.0.driver=raw"));
        final Qmp qmp = qemu.qmp();
        qmp.execute("blockdev-add", "{\"driver\":\"replication\",\"node-name\":\"nbd_client1\",\"mode\":\"primary\"," +
            "\"file\":{\"driver\":\"nbd\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"" +
            sinkServer.tcpPort() + "\"},\"export\":\"colo1\"}}");
        qmp.execute("x-blockdev-change", "{\"parent\":\"colo1\",\"node\":\"nbd_client1\"}");
        assertEquals(1, sinkServer.connectionCount(), "QEMU's replication child is connected to our sink");
    }

    private void pvmWrite(final long offset, final long length, final int pattern) throws Exception
    {
        qemu.qemuIo("colo1", String.format("write -P 0x%02x %d %d", pattern, offset, length), wrote(offset, length));
    }

    private void svmWrite(final long offset, final long length, final int pattern) throws Exception
    {
        final String output = fx.tool("qemu-io", "-f", "raw", "nbd+unix:///svm?socket=" + svmSocket, "-c",
            String.format("write -P 0x%02x %d %d", pattern, offset, length));
        assertEquals(wrote(offset, length), output.lines().findFirst().orElse(""), output);
    }

    private static String wrote(final long offset, final long length)
    {
        return "wrote " + length + "/" + length + " bytes at offset " + offset;
    }

    /**
     * Spec 3.1 E3 (AX-04) with our secondary, plus AX-05/AX-06 in the first epoch: PVM 0x22 [32M,64M),
     * write-zeroes at 40M and (unmap) 48M, discard at 56M (QEMU does not forward it), flush; SVM 0x33 [0,1M);
     * checkpoint; PVM 0x44 [0,32M); SVM 0x55 [16M,17M); QEMU SIGKILL; failover. S must then be the SVM's view:
     * the checkpointed primary data, the current epoch's SVM write, and neither the unfinished epoch's primary
     * write nor the SVM write dropped at the checkpoint.
     */
    @Test
    @Timeout(60)
    void qemuPrimaryCrashThenOurSecondaryFailsOver() throws Exception
    {
        startQemuPrimary();
        final NbdCounters counters = sinkServer.counters();

        pvmWrite(M32, M32, 0x22);
        final Layout epoch0 = Layout.filled(SIZE, 0x11).paint(M32, M32, 0x22);
        epoch0.assertFile(s, "forwarded writes land in S");
        assertEquals(0, counters.requests(NbdProtocol.CMD_READ), "the replication child never reads");

        // AX-05: QEMU forwards write-zeroes (with or without unmap) as a WRITE of zeroes, a flush as a FLUSH.
        final long writes = counters.requests(NbdProtocol.CMD_WRITE);
        final long writeBytes = counters.bytes(NbdProtocol.CMD_WRITE);
        qemu.qemuIo("colo1", "write -z " + ZERO_AT + " " + CLUSTER, wrote(ZERO_AT, CLUSTER));
        qemu.qemuIo("colo1", "write -z -u " + ZERO_UNMAP_AT + " " + CLUSTER, wrote(ZERO_UNMAP_AT, CLUSTER));
        assertEquals(writes + 2, counters.requests(NbdProtocol.CMD_WRITE));
        assertEquals(writeBytes + 2 * CLUSTER, counters.bytes(NbdProtocol.CMD_WRITE));
        assertEquals(0, counters.requests(NbdProtocol.CMD_WRITE_ZEROES));
        epoch0.paint(ZERO_AT, CLUSTER, 0).paint(ZERO_UNMAP_AT, CLUSTER, 0).assertFile(s, "zeroes land in S");
        // AX-06 as QEMU does it: a discard is not forwarded at all, S keeps the old bytes.
        qemu.qemuIo("colo1", "discard " + DISCARD_AT + " " + CLUSTER, "discard " + CLUSTER + "/" + CLUSTER +
            " bytes at offset " + DISCARD_AT);
        assertEquals(writes + 2, counters.requests(NbdProtocol.CMD_WRITE));
        assertEquals(0, counters.requests(NbdProtocol.CMD_TRIM));
        epoch0.assertFile(s, "a discard leaves S alone");
        final long flushes = counters.requests(NbdProtocol.CMD_FLUSH);
        qemu.qemuIo("colo1", "flush", "");
        assertEquals(flushes + 1, counters.requests(NbdProtocol.CMD_FLUSH), "one flush reaches the secondary");

        svmWrite(0, MIB, 0x33);

        qemu.qmp().execute("xen-colo-do-checkpoint");
        assertTrue(secondary.checkpoint(5 * SECOND).ok());
        assertEquals(1, secondary.epoch());
        epoch0.assertDevice(secondary.view(), "view", "the SVM view after the checkpoint (AT-08, AX-03)");

        pvmWrite(0, M32, 0x44);
        svmWrite(16 * MIB, MIB, 0x55);
        epoch0.paint(0, M32, 0x44).assertFile(s, "S holds the primary's writes of the unfinished epoch");

        final Layout expected = Layout.filled(SIZE, 0x11).paint(16 * MIB, MIB, 0x55).paint(M32, M32, 0x22)
            .paint(ZERO_AT, CLUSTER, 0).paint(ZERO_UNMAP_AT, CLUSTER, 0);
        expected.assertDevice(secondary.view(), "view", "the SVM view before failover");

        qemu.kill();
        // As COLO-FT's nbd-server-stop: the forwarding export goes first (its final flush reaches S, still open).
        sinkServer.close();
        assertEquals(ControlResult.OK, secondary.failover(5 * SECOND));
        assertEquals(0, secondary.awaitFailover(20 * SECOND));
        assertSame(ReplicationStage.DONE, secondary.stage());
        assertEquals(ControlResult.OK, secondary.getError());
        expected.assertFile(s, "S after failover (spec 3.1 E3)");
    }

    /**
     * AX-09 as QEMU 7.2 does it (spec 7, E2): a PVM write before {@code xen-set-replication} succeeds for the
     * guest (quorum, vote-threshold 1) but is not forwarded, so S silently misses it. Our secondary never sees
     * a request; after the start, forwarding works.
     */
    @Test
    @Timeout(60)
    void qemuPrimaryDoesNotForwardWritesBeforeStart() throws Exception
    {
        addReplicationChild();
        final NbdCounters counters = sinkServer.counters();
        pvmWrite(0, MIB, 0x21);
        assertEquals(0, counters.requests(NbdProtocol.CMD_WRITE), "nothing forwarded before the start");
        Layout.filled(SIZE, 0x11).assertFile(s, "S misses the PVM write made before the start");

        qemu.qmp().execute("xen-set-replication", "{\"enable\":true,\"primary\":true}");
        pvmWrite(MIB, MIB, 0x22);
        assertEquals(1, counters.requests(NbdProtocol.CMD_WRITE));
        Layout.filled(SIZE, 0x11).paint(MIB, MIB, 0x22).assertFile(s, "S after the start");
    }
}
