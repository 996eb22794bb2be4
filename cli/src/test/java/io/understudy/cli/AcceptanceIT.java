package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.understudy.engine.replication.ReplicationSecondary;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static io.understudy.cli.Commands.awaitFile;
import static io.understudy.cli.Commands.awaitState;
import static io.understudy.cli.Commands.awaitStatus;
import static io.understudy.cli.Commands.qemuIo;
import static io.understudy.cli.Commands.qemuIoCannotConnect;
import static io.understudy.cli.Commands.qemuIoFails;
import static io.understudy.cli.Commands.status;
import static io.understudy.cli.Commands.statusCli;
import static io.understudy.cli.Commands.understudy;
import static io.understudy.cli.Commands.understudyJson;
import static io.understudy.cli.DiskFiles.assertRange;
import static io.understudy.cli.DiskFiles.assertSameBytes;
import static io.understudy.cli.DiskFiles.fill;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_TIMEOUT_MS;
import static io.understudy.cli.ReplicaTestSettings.MIB;
import static io.understudy.cli.ReplicaTestSettings.SIZE;
import static io.understudy.cli.ReplicaTestSettings.STARTUP;
import static io.understudy.cli.ReplicaTestSettings.STOP;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The lifecycle scenarios of spec 4.2 that so far ran only against the engine (AT-01..04, AT-07, AT-09, AX-08,
 * AX-09, AX-16), through real daemons started by {@code bin/understudy}, qemu-io and nbdsh as the guests and as a
 * foreign primary, the thin clients as the operator, and exact byte comparisons of P, S, H, A and the exports. The
 * suite runs once per {@link PeerTransport}.
 * <p>
 * Where the daemons have no such state the scenario is translated, and the translation says why:
 * <ul>
 *     <li>Neither daemon has a "not started" stage an operator can reach: each calls start before it serves any
 *     export. "Not started" is therefore a daemon that is still waiting for its peer or whose start was refused;
 *     the spec's "I/O fails" becomes "nobody serves the export", checked with qemu-io failing to connect, and
 *     "nothing forwarded, nothing changed" is checked on the files.</li>
 *     <li>AT-02 wants primary reads to fail. Understudy's primary is the guest's whole disk (QEMU's quorum with the
 *     replication child): reads are served from P, never from the secondary (INV-P), so the test reads P's bytes
 *     back through the guest's export.</li>
 *     <li>AT-07's start(primary) after a failover: the CLI has no start command; the nearest operator action, a
 *     primary linking to the promoted secondary, is refused rather than ignored, because S is no longer a
 *     replica of anybody.</li>
 *     <li>AX-08's checkpoint, get_error and stop before start, a second start(secondary) and A/H/S of different
 *     lengths have no process-level form (start is implicit, a second daemon on the same files is refused by
 *     the lock, covered by ReplicationIT, and the daemon sizes H and A from S). QEMU's top-id/mode options map
 *     to the command-line options of each role, which are checked here.</li>
 * </ul>
 */
@ParameterizedClass(name = "{0}")
@EnumSource(PeerTransport.class)
class AcceptanceIT
{
    private static final int CLUSTER = 65536;

    @TempDir
    Path dir;

    private final PeerTransport transport;
    private ReplicaPair pair;

    AcceptanceIT(final PeerTransport transport)
    {
        this.transport = transport;
    }

    @BeforeEach
    void createDisks() throws Exception
    {
        pair = new ReplicaPair(dir, transport, SIZE);
    }

    @AfterEach
    void killLeftovers()
    {
        pair.close();
    }

    /**
     * AT-01 (with AX-08's "lengths differ -> start fails and nothing changes"): a primary whose disk does not match
     * the secondary's never starts; it serves no guest I/O, forwards nothing, and leaves the secondary free for a
     * matching primary.
     */
    @Test
    void at01_primaryThatDidNotStartServesNoGuestIoAndForwardsNothing() throws Exception
    {
        pair.startSecondary();
        fill(pair.primaryDisk, SIZE + CLUSTER, ReplicaPair.PATTERN);
        final Commands.Result refused = understudy(pair.primaryArgs(pair.peer).toArray(String[]::new));
        assertEquals(1, refused.exitCode(), refused.output());
        // Over NBD the primary sees the export's size; over Aeron the secondary refuses the hello.
        assertTrue(refused.output().contains("the peer's export has " + SIZE + " bytes, the disk " +
            (SIZE + CLUSTER) + ": they must be equal") || refused.output().contains("refused the link (disk-size): " +
            "the primary's disk has " + (SIZE + CLUSTER) + " bytes, the secondary's " + SIZE), refused.output());
        assertFalse(Files.exists(pair.pvm), "no guest export");
        qemuIoCannotConnect(pair.pvmUri(), "read 0 16M");
        qemuIoCannotConnect(pair.pvmUri(), "write -z 0 16M");

        assertRange(pair.primaryDisk, 0, SIZE + CLUSTER, ReplicaPair.PATTERN);
        assertRange(pair.secondaryDisk, 0, SIZE, ReplicaPair.PATTERN);
        assertRange(pair.hidden, 0, SIZE, 0);
        final JsonNode secondary = status(pair.secondaryControl);
        assertEquals("running", secondary.path("state").asText(), secondary.toString());
        assertEquals("none", secondary.path("peer").path("link").asText(), secondary.toString());
        assertEquals(0, secondary.path("epoch").asLong(), secondary.toString());

        fill(pair.primaryDisk, SIZE, ReplicaPair.PATTERN);
        pair.startPrimary();
        qemuIo(pair.pvmUri(), "write -P 0x22 0 64k");
        assertSameBytes(pair.primaryDisk, pair.secondaryDisk);
    }

    /** AT-02: a started primary writes P and forwards exactly the same bytes; S's originals go to H first. */
    @Test
    void at02_startedPrimaryWritesLocallyAndForwardsExactBytes() throws Exception
    {
        pair.start();
        qemuIo(pair.pvmUri(), "write -P 0x22 0 16M", "read -P 0x22 0 16M");
        assertRange(pair.primaryDisk, 0, SIZE, 0x22);
        assertSameBytes(pair.primaryDisk, pair.secondaryDisk);
        assertRange(pair.hidden, 0, SIZE, ReplicaPair.PATTERN);
        assertRange(pair.active, 0, SIZE, 0);
        qemuIo(pair.svmUri(), "read -P 0x11 0 16M");

        final JsonNode primary = status(pair.primaryControl);
        assertEquals("running", primary.path("state").asText(), primary.toString());
        assertTrue(primary.path("error").isNull(), primary.toString());
        assertTrue(primary.path("forwarding").asBoolean(), primary.toString());
        assertEquals(SIZE / CLUSTER, primary.path("dirty-clusters").asLong(), primary.toString());
    }

    /**
     * AT-03: on a started primary checkpoint and get_error (status) succeed, stop succeeds; afterwards guest writes
     * fail and nothing more is forwarded, and a second stop or a checkpoint is an accepted no-op.
     */
    @Test
    void at03_primaryCheckpointStatusAndStopSucceedThenGuestIoIsRefused() throws Exception
    {
        pair.start();
        qemuIo(pair.pvmUri(), "write -P 0x22 8M 1M");
        final JsonNode checkpoint = understudyJson("checkpoint", "--control", pair.primaryControl.toString());
        assertEquals(1, checkpoint.path("epoch").asLong(), checkpoint.toString());
        assertFalse(checkpoint.path("ignored").asBoolean(), checkpoint.toString());
        final JsonNode healthy = statusCli(pair.primaryControl);
        assertTrue(healthy.path("error").isNull(), healthy.toString());
        assertEquals("running", healthy.path("state").asText(), healthy.toString());

        final JsonNode stop = understudyJson("stop", "--control", pair.primaryControl.toString());
        assertFalse(stop.path("ignored").asBoolean(), stop.toString());
        final JsonNode stopped = status(pair.primaryControl);
        assertEquals("done", stopped.path("state").asText(), stopped.toString());
        final long forwarded = stopped.path("forwarded").asLong();
        qemuIoFails(pair.pvmUri(), "write", "Cannot send after transport endpoint shutdown", "write -P 0x23 0 64k");
        qemuIoFails(pair.pvmUri(), "write", "Cannot send after transport endpoint shutdown", "write -z 0 64k");
        assertEquals(forwarded, status(pair.primaryControl).path("forwarded").asLong(), "nothing forwarded");

        assertTrue(understudyJson("stop", "--failover", "--control", pair.primaryControl.toString())
            .path("ignored").asBoolean());
        final JsonNode ignored = understudyJson("checkpoint", "--control", pair.primaryControl.toString());
        assertTrue(ignored.path("ignored").asBoolean(), ignored.toString());
        assertEquals(1, ignored.path("epoch").asLong(), ignored.toString());

        assertRange(pair.primaryDisk, 0, 8 * MIB, ReplicaPair.PATTERN);
        assertRange(pair.primaryDisk, 8 * MIB, MIB, 0x22);
        assertRange(pair.primaryDisk, 9 * MIB, 7 * MIB, ReplicaPair.PATTERN);
        assertSameBytes(pair.primaryDisk, pair.secondaryDisk);
        final JsonNode secondary = status(pair.secondaryControl);
        assertEquals("peer-goodbye", secondary.path("peer").path("link").asText(), secondary.toString());
        qemuIo(pair.svmUri(), "read -P 0x11 0 8M", "read -P 0x22 8M 1M", "read -P 0x11 9M 7M");
    }

    /**
     * AT-04 and AX-09's first half: a secondary that did not start (here: refused, its state file says the last
     * run crashed) serves neither the SVM's disk nor the forwarding sink, so neither the SVM nor a primary can
     * touch S before start; once started (after the operator's resync) the SVM sees S unchanged.
     */
    @Test
    void at04_ax09_secondaryThatDidNotStartServesNeitherTheSvmNorTheSink() throws Exception
    {
        final Path state = dir.resolve("hidden.img.state");
        try (ReplicaStateFile record = ReplicaStateFile.open(state, 1))
        {
            record.write(ReplicaStateFile.Phase.RUNNING, 3, 0);
        }
        final int port = freePortPair();
        final DaemonProcess refused = pair.start(pair.secondaryArgs(transport.listen(port)));
        assertEquals(1, refused.waitFor(STARTUP), refused.output());
        assertTrue(refused.output().contains("the previous run stopped while RUNNING (epoch 3)"), refused.output());

        qemuIoCannotConnect(pair.svmUri(), "read 0 64k");
        qemuIoCannotConnect(pair.svmUri(), "write -P 0x33 0 64k");
        if (transport.plainNbdSink())
        {
            qemuIoCannotConnect(pair.peerAt(port).nbdUri(), "write -P 0x21 0 1M");
        }
        final Commands.Result primary = understudy(pair.primaryArgs(pair.peerAt(port), "--connect-timeout-ms",
            "500").toArray(String[]::new));
        assertEquals(1, primary.exitCode(), primary.output());
        assertTrue(primary.output().contains("cannot reach the peer"), primary.output());
        assertRange(pair.secondaryDisk, 0, SIZE, ReplicaPair.PATTERN);

        pair.startSecondary("--resynced");
        qemuIo(pair.svmUri(), "read -P 0x11 0 16M");
        assertEquals(0, pair.secondary.terminate(STOP), pair.secondary.output());
        assertRange(pair.secondaryDisk, 0, SIZE, ReplicaPair.PATTERN);
    }

    /**
     * AX-09's second half: a guest write issued before the primary started is refused (the guest's export does not
     * exist while the primary waits for its secondary), never acknowledged and left un-forwarded. Started in the
     * wrong order, the pair comes up in the right one: the secondary first, then the primary's start.
     */
    @Test
    void ax09_guestWriteBeforeThePrimaryStartedIsRefusedNotDropped() throws Exception
    {
        final int port = freePortPair();
        final DaemonProcess primary = pair.start(pair.primaryArgs(pair.peerAt(port), "--connect-timeout-ms",
            "60000"));
        Thread.sleep(2000); // the primary's JVM is up and retrying its peer by now
        qemuIoCannotConnect(pair.pvmUri(), "write -P 0x21 4M 1M");
        assertRange(pair.primaryDisk, 0, SIZE, ReplicaPair.PATTERN);

        final DaemonProcess secondary = pair.start(pair.secondaryArgs(transport.listen(port)));
        secondary.awaitLine(transport.readyLine(), STARTUP);
        primary.awaitLine("primary ready", STARTUP);
        // The waiting primary may link before the secondary prints its ready line: no order between the two lines.
        Commands.awaitStatus(pair.secondaryControl, "/peer/link", "up");
        qemuIo(pair.pvmUri(), "write -P 0x22 4M 1M");
        assertSameBytes(pair.primaryDisk, pair.secondaryDisk);
        assertRange(pair.secondaryDisk, 4 * MIB, MIB, 0x22);
        assertRange(pair.hidden, 4 * MIB, MIB, ReplicaPair.PATTERN);
        qemuIo(pair.svmUri(), "read -P 0x11 0 16M");
    }

    /**
     * AT-07: after a completed failover, checkpoint, stop and failover (again) are accepted without effect; a
     * primary trying to link (the nearest thing to start(primary)) is refused; S and the SVM view keep AT-06's
     * contents.
     */
    @Test
    void at07_controlAfterFailoverIsAcceptedWithoutEffect() throws Exception
    {
        pair.start();
        qemuIo(pair.pvmUri(), "write -P 0x22 8M 8M");
        qemuIo(pair.svmUri(), "write -P 0x33 0 8M");
        pair.primary.kill();
        pair.secondary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 3000));
        final JsonNode failover = understudyJson("failover", "--control", pair.secondaryControl.toString());
        assertFalse(failover.path("ignored").asBoolean(), failover.toString());
        assertAt06Contents();

        final String control = pair.secondaryControl.toString();
        final JsonNode checkpoint = understudyJson("checkpoint", "--control", control);
        assertTrue(checkpoint.path("ignored").asBoolean(), checkpoint.toString());
        assertEquals(0, checkpoint.path("epoch").asLong(), checkpoint.toString());
        for (final List<String> command : List.of(List.of("stop"), List.of("stop", "--failover"),
            List.of("failover")))
        {
            final String[] args = concat(command, "--control", control);
            final JsonNode reply = understudyJson(args);
            assertTrue(reply.path("ignored").asBoolean(), String.join(" ", args) + ": " + reply);
        }
        final Path late = dir.resolve("late.img");
        fill(late, SIZE, ReplicaPair.PATTERN);
        final Commands.Result start = understudy(pair.primaryArgs(late, dir.resolve("late.sock"),
            dir.resolve("late.ctl"), pair.peer).toArray(String[]::new));
        assertEquals(1, start.exitCode(), start.output());
        assertTrue(start.output().contains("the secondary refused the link (generation): rule SB-STALE-PRIMARY"),
            start.output());

        final JsonNode done = status(pair.secondaryControl);
        assertEquals("done", done.path("state").asText(), done.toString());
        assertEquals(0, done.path("epoch").asLong(), done.toString());
        assertTrue(done.path("error").isNull(), done.toString());
        assertAt06Contents();
        assertRange(late, 0, SIZE, ReplicaPair.PATTERN);
    }

    /**
     * AT-05 and AT-06 with H's clusters smaller than the cluster size (4 KiB, the non-shared default): a
     * forwarded 4 KiB write copies one 4 KiB original into H, not its 64 KiB cluster; the SVM, whose A keeps
     * 64 KiB clusters, sees the checkpoint's bytes around it; failover rolls exactly the primary's blocks back.
     */
    @Test
    void smallHiddenClustersCopyOnlyTheBlocksWrittenAndFailoverRollsThemBack() throws Exception
    {
        pair.start();
        qemuIo(pair.pvmUri(), "write -P 0x22 1028k 4k", "write -P 0x23 8M 64k");
        final JsonNode copied = awaitStatus(pair.secondaryControl, "/counters/hidden-clusters", "17");
        assertEquals(ReplicationSecondary.DEFAULT_HIDDEN_CLUSTER_SIZE, copied.path("hidden-cluster-size").asLong(),
            copied.toString());
        assertEquals(CLUSTER, copied.path("cluster-size").asLong(), copied.toString());
        assertEquals("memory", copied.path("cow-copy").asText(), "copies go through memory unless asked, as in QEMU");
        assertEquals(17, copied.path("counters").path("cow-copies").asLong(), copied.toString());
        assertEquals(0, copied.path("counters").path("cow-copies-offloaded").asLong(), copied.toString());
        qemuIo(pair.svmUri(), "read -P 0x11 1M 64k", "read -P 0x11 8M 64k", "write -P 0x33 1M 4k");
        awaitStatus(pair.secondaryControl, "/counters/active-clusters", "1");
        qemuIo(pair.svmUri(), "read -P 0x33 1M 4k", "read -P 0x11 1028k 60k");
        assertRange(pair.secondaryDisk, MIB + 4096, 4096, 0x22);

        pair.primary.kill();
        pair.secondary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 3000));
        understudyJson("failover", "--control", pair.secondaryControl.toString());
        awaitState(pair.secondaryControl, "done");
        assertRange(pair.secondaryDisk, 0, MIB, ReplicaPair.PATTERN);
        assertRange(pair.secondaryDisk, MIB, 4096, 0x33);
        assertRange(pair.secondaryDisk, MIB + 4096, SIZE - MIB - 4096, ReplicaPair.PATTERN);
    }

    /**
     * Kill -9 of the secondary while the guest streams writes: the primary reports the loss within the heartbeat
     * deadline, degrades (error latched, forwarding stopped, dirty bitmap kept) and the guest's writes all land on
     * P (spec 3.2, AX-18).
     */
    @Test
    void killedSecondaryMidStreamIsReportedWithinTheHeartbeatTimeoutAndTheGuestGoesOn() throws Exception
    {
        pair.start();
        final List<String> writes = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (int pass = 0; pass < 8; pass++)
        {
            writes.addAll(List.of("-c", "write -P 0x" + Integer.toHexString(0x20 + pass) + " 0 16M"));
        }
        writes.add(pair.pvmUri());
        final Process guest = pair.track(new ProcessBuilder(writes).redirectErrorStream(true).start());
        Thread.sleep(300);
        final long killed = System.nanoTime();
        pair.secondary.kill();
        pair.primary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 3000));
        final long reportedMillis = (System.nanoTime() - killed) / 1_000_000;
        System.out.printf("%s: peer loss reported by the primary %d ms after kill -9 of the secondary%n", transport,
            reportedMillis);
        assertTrue(reportedMillis < HEARTBEAT_TIMEOUT_MS + 1500, "reported after " + reportedMillis + " ms");
        final String guestOutput = new String(guest.getInputStream().readAllBytes());
        assertEquals(0, guest.waitFor(), guestOutput);
        assertFalse(guestOutput.contains("error"), guestOutput);

        final JsonNode status = status(pair.primaryControl);
        assertEquals("degraded", status.path("state").asText(), status.toString());
        assertFalse(status.path("error").isNull(), status.toString());
        assertTrue(status.path("dirty-clusters").asLong() > 0, status.toString());
        qemuIo(pair.pvmUri(), "write -P 0x55 1M 1M");
        assertEquals(0, pair.primary.terminate(STOP), pair.primary.output());
        assertRange(pair.primaryDisk, 0, MIB, 0x27);
        assertRange(pair.primaryDisk, MIB, MIB, 0x55);
        assertRange(pair.primaryDisk, 2 * MIB, 14 * MIB, 0x27);
    }

    /** AT-09: a started secondary reports no error (get_error), and stop(failover=true) succeeds. */
    @Test
    void at09_startedSecondaryReportsNoErrorAndFailoverSucceeds() throws Exception
    {
        pair.start();
        for (final Path control : List.of(pair.secondaryControl, pair.primaryControl))
        {
            final JsonNode status = statusCli(control);
            assertTrue(status.path("error").isNull(), status.toString());
            assertEquals("running", status.path("state").asText(), status.toString());
        }
        final JsonNode stop = understudyJson("stop", "--failover", "--control", pair.secondaryControl.toString());
        assertFalse(stop.path("ignored").asBoolean(), stop.toString());
        final JsonNode done = status(pair.secondaryControl);
        assertEquals("done", done.path("state").asText(), done.toString());
        assertTrue(done.path("error").isNull(), done.toString());
        pair.primary.awaitLine("the secondary ended the control link \\(it took over\\)", STARTUP);
        assertEquals("degraded", awaitState(pair.primaryControl, "degraded").path("state").asText());
        assertEquals(0, pair.secondary.terminate(STOP), pair.secondary.output());
        assertRange(pair.secondaryDisk, 0, SIZE, ReplicaPair.PATTERN);
        assertSameBytes(pair.primaryDisk, pair.secondaryDisk);
    }

    /**
     * AX-16: once the secondary fails over, forwarded writes never reach S: the still-running primary (a partition
     * as the secondary saw it) is told and stops forwarding, and a foreign NBD client already connected to the
     * sink before the failover has its next write refused.
     */
    @Test
    void ax16_forwardedWritesAfterFailoverNeverReachS() throws Exception
    {
        pair.start();
        qemuIo(pair.pvmUri(), "write -P 0x22 8M 1M");          // epoch 0: rolled back by the failover
        final Path connected = dir.resolve("connected");
        final Path go = dir.resolve("go");
        final Process foreign = transport.plainNbdSink() ? pair.nbdsh(pair.peer.nbdUri(),
            """
            import os, time
            h.pwrite(b'\\x66' * 65536, 12 << 20)
            open('%s', 'w').close()
            while not os.path.exists('%s'):
                time.sleep(0.02)
            try:
                h.pwrite(b'\\x67' * 65536, 13 << 20)
                print('after failover: written')
            except nbd.Error as e:
                print('after failover: refused:', e)
            """.formatted(connected, go)) : null;
        if (foreign != null)
        {
            awaitFile(connected, STARTUP);
            assertRange(pair.hidden, 12 * MIB, CLUSTER, ReplicaPair.PATTERN);
        }

        understudyJson("failover", "--control", pair.secondaryControl.toString());
        pair.primary.awaitLine("the secondary ended the control link \\(it took over\\)", STARTUP);
        qemuIo(pair.pvmUri(), "write -P 0x44 0 1M", "read -P 0x44 0 1M");
        final JsonNode degraded = awaitState(pair.primaryControl, "degraded");
        assertFalse(degraded.path("forwarding").asBoolean(), degraded.toString());
        if (foreign != null)
        {
            Files.createFile(go);
            final String output = Commands.finish(foreign, STARTUP);
            assertTrue(output.contains("after failover: refused:"), output);
            qemuIoFails(pair.peer.nbdUri(), "write", "Cannot send after transport endpoint shutdown",
                "write -P 0x68 14M 64k");
        }

        assertRange(pair.primaryDisk, 0, MIB, 0x44);
        assertRange(pair.primaryDisk, 8 * MIB, MIB, 0x22);
        assertRange(pair.secondaryDisk, 0, SIZE, ReplicaPair.PATTERN);
        qemuIo(pair.svmUri(), "read -P 0x11 0 16M");
    }

    /**
     * AX-08 at process level: a second primary for a linked secondary, a primary with another cluster size or
     * disk mode, and options of the other role are all refused before anything is forwarded; the linked pair
     * goes on replicating, its files exact.
     */
    @Test
    void ax08_mismatchedOrSecondStartsAreRefusedAndChangeNothing() throws Exception
    {
        pair.start();
        qemuIo(pair.pvmUri(), "write -P 0x22 8M 1M");
        final Path other = dir.resolve("other.img");
        fill(other, SIZE, ReplicaPair.PATTERN);
        final List<String> refusals = List.of(
            "a primary is linked already",
            "the primary uses 131072-byte clusters, the secondary 65536",
            "the primary is shared, the secondary is not");
        final List<List<String>> extraArgs = List.of(List.of(), List.of("--cluster-size", "128K"),
            List.of("--shared"));
        for (int i = 0; i < refusals.size(); i++)
        {
            final Commands.Result refused = understudy(pair.primaryArgs(other, dir.resolve("other.sock"),
                dir.resolve("other.ctl"), pair.peer, extraArgs.get(i).toArray(String[]::new)).toArray(String[]::new));
            assertEquals(1, refused.exitCode(), refused.output());
            assertTrue(refused.output().contains("the secondary refused the link"), refused.output());
            assertTrue(refused.output().contains(refusals.get(i)), refused.output());
        }
        final Commands.Result topId = understudy(concat(pair.primaryArgs(pair.peer), "--hidden", "h2.img"));
        assertNotEquals(0, topId.exitCode(), topId.output());
        assertTrue(topId.output().contains("Unknown options: '--hidden', 'h2.img'"), topId.output());
        final Commands.Result noActive = understudy("secondary", "--disk", other.toString(), "--hidden",
            dir.resolve("h2.img").toString(), "--socket", dir.resolve("s2.sock").toString(), "--control",
            dir.resolve("s2.ctl").toString(), "--listen", transport.listen());
        assertNotEquals(0, noActive.exitCode(), noActive.output());
        assertTrue(noActive.output().contains("Missing required option: '--active=FILE'"), noActive.output());

        final JsonNode secondary = status(pair.secondaryControl);
        assertEquals("up", secondary.path("peer").path("link").asText(), secondary.toString());
        assertEquals("running", secondary.path("state").asText(), secondary.toString());
        qemuIo(pair.pvmUri(), "write -P 0x23 0 64k");
        assertSameBytes(pair.primaryDisk, pair.secondaryDisk);
        assertRange(pair.secondaryDisk, 0, CLUSTER, 0x23);
        assertRange(pair.secondaryDisk, 8 * MIB, MIB, 0x22);
        assertRange(other, 0, SIZE, ReplicaPair.PATTERN);
        assertFalse(Files.exists(dir.resolve("other.sock")), "no guest export for a refused primary");
    }

    /** AT-06's contents on S and through the SVM's export: the SVM's 0x33 kept, the primary's epoch rolled back. */
    private void assertAt06Contents() throws Exception
    {
        assertRange(pair.secondaryDisk, 0, 8 * MIB, 0x33);
        assertRange(pair.secondaryDisk, 8 * MIB, 8 * MIB, ReplicaPair.PATTERN);
        qemuIo(pair.svmUri(), "read -P 0x33 0 8M", "read -P 0x11 8M 8M");
    }

    private static String[] concat(final List<String> head, final String... tail)
    {
        final List<String> all = new ArrayList<>(head);
        all.addAll(List.of(tail));
        return all.toArray(String[]::new);
    }

    /** A free port whose successor is free too: the secondary's control link takes port + 1 by default. */
    private static int freePortPair() throws IOException
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            try (ServerSocket first = new ServerSocket(0))
            {
                final int port = first.getLocalPort();
                if (port < 65535)
                {
                    try (ServerSocket _ = new ServerSocket(port + 1))
                    {
                        return port;
                    }
                    catch (final IOException taken)
                    {
                        // try another pair
                    }
                }
            }
        }
        throw new IOException("no two adjacent free ports");
    }
}
