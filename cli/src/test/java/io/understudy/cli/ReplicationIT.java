package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;

import static io.understudy.cli.Commands.qemuIo;
import static io.understudy.cli.Commands.status;
import static io.understudy.cli.Commands.understudy;
import static io.understudy.cli.Commands.understudyOk;
import static io.understudy.cli.Commands.unixUri;
import static io.understudy.cli.DiskFiles.assertRange;
import static io.understudy.cli.DiskFiles.assertSameBytes;
import static io.understudy.cli.DiskFiles.awaitAllZero;
import static io.understudy.cli.DiskFiles.fill;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_MS;
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
 * The acceptance scenarios at process level: a secondary and a primary daemon started through
 * {@code bin/understudy}, qemu-io writing into the PVM's and the SVM's exports, the thin clients for
 * checkpoint, failover, stop and status, kill -9 for crashes, and exact byte comparisons of the files.
 * Disks are 16 MiB with halves L = [0, 8M) and R = [8M, 16M); heartbeats every 200 ms, peer lost after 1.5 s
 * (slack for JIT and GC pauses on a loaded 2-core CI machine).
 */
class ReplicationIT
{

    @TempDir
    Path dir;

    private final List<DaemonProcess> daemons = new ArrayList<>();
    private Path secondaryDisk;
    private Path hidden;
    private Path active;
    private Path svm;
    private Path secondaryControl;
    private Path primaryDisk;
    private Path pvm;
    private Path primaryControl;
    private DaemonProcess secondary;
    private DaemonProcess primary;
    private List<String> primaryArgs;

    @AfterEach
    void killLeftovers()
    {
        daemons.forEach(DaemonProcess::close);
    }

    /** AT-05, AX-01 (COW into H), SVM isolation, AT-08/AX-03 (checkpoint through the CLI), clean SIGTERM. */
    @Test
    void pvmWritesReachSecondaryWithCowIntoHiddenAndCheckpointAdvancesTheEpoch() throws Exception
    {
        startPair(false);
        qemuIo(unixUri(pvm), "write -P 0x22 8M 8M");
        qemuIo(unixUri(svm), "read -P 0x11 8M 8M", "write -P 0x33 0 8M", "read -P 0x33 0 8M");
        qemuIo(unixUri(pvm), "read -P 0x11 0 8M", "read -P 0x22 8M 8M");
        assertRange(secondaryDisk, 0, 8 * MIB, 0x11);
        assertRange(secondaryDisk, 8 * MIB, 8 * MIB, 0x22);
        assertRange(hidden, 8 * MIB, 8 * MIB, 0x11); // the originals, copied before S was overwritten
        assertRange(hidden, 0, 8 * MIB, 0);

        final String report = understudyOk("checkpoint", "--control", primaryControl.toString());
        System.out.println("coordinated checkpoint: " + report.strip());
        assertTrue(report.contains("\"epoch\":1"), report);
        for (final Path control : List.of(primaryControl, secondaryControl))
        {
            final JsonNode status = Commands.statusCli(control);
            assertEquals(1, status.path("epoch").asLong(), status.toString());
            assertEquals("running", status.path("state").asText(), status.toString());
            assertEquals("non-shared", status.path("mode").asText(), status.toString());
            assertTrue(status.path("error").isNull(), status.toString());
            assertEquals("up", status.path("peer").path("link").asText(), status.toString());
        }
        assertEquals(0, status(primaryControl).path("dirty-clusters").asLong());
        // After the checkpoint the SVM sees exactly the PVM's disk: its own writes are dropped.
        qemuIo(unixUri(svm), "read -P 0x11 0 8M", "read -P 0x22 8M 8M");

        final String text = understudyOk("status", "--control", secondaryControl.toString());
        assertEquals("role=secondary mode=non-shared state=running epoch=1 peer=up error=none",
            text.lines().findFirst().orElse(""), text);
        final Commands.Result refused = understudy("checkpoint", "--control", secondaryControl.toString());
        assertEquals(1, refused.exitCode(), refused.output());
        assertTrue(refused.output().contains("run checkpoint on the primary"), refused.output());

        assertEquals(0, primary.terminate(STOP), primary.output());
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertTrue(secondary.output().contains("stopped cleanly"), secondary.output());
        assertSameBytes(primaryDisk, secondaryDisk);
    }

    /** AT-06 / AX-04 over processes: the primary crashes mid-epoch, the secondary takes over and rolls back. */
    @Test
    void failoverOnTheSecondaryAfterThePrimaryIsKilled() throws Exception
    {
        startPair(false);
        qemuIo(unixUri(pvm), "write -P 0x44 0 1M");
        understudyOk("checkpoint", "--control", primaryControl.toString());
        qemuIo(unixUri(pvm), "write -P 0x22 8M 8M");          // unfinished epoch: must be rolled back
        qemuIo(unixUri(svm), "write -P 0x33 0 8M");

        final String name = "primary killed";
        final long killed = System.nanoTime();
        primary.kill();
        secondary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 2000));
        final long reportedMillis = (System.nanoTime() - killed) / 1_000_000;
        System.out.printf("%s: peer loss reported %d ms after kill -9%n", name, reportedMillis);
        assertTrue(reportedMillis < HEARTBEAT_TIMEOUT_MS + 1000, "peer loss reported after " + reportedMillis + " ms");
        final JsonNode lost = status(secondaryControl);
        assertEquals("lost", lost.path("peer").path("link").asText(), lost.toString());
        assertEquals("running", lost.path("state").asText(), lost.toString());
        qemuIo(unixUri(svm), "read -P 0x33 0 8M", "read -P 0x11 8M 8M"); // still serving

        // A restarted primary must not resume replication silently: its disk may hold writes S never saw.
        final Commands.Result restarted = understudy(primaryArgs.toArray(String[]::new));
        assertEquals(1, restarted.exitCode(), restarted.output());
        assertTrue(restarted.output().contains("refused the link (generation): rule SB-OTHER-GENERATION"),
            restarted.output());

        System.out.println("failover: " + understudyOk("failover", "--control", secondaryControl.toString()).strip());
        final Commands.Result stale = understudy(primaryArgs.toArray(String[]::new));
        assertEquals(1, stale.exitCode(), stale.output());
        assertTrue(stale.output().contains("refused the link (generation): rule SB-STALE-PRIMARY"), stale.output());
        final JsonNode done = status(secondaryControl);
        assertEquals("done", done.path("state").asText(), done.toString());
        assertEquals(1, done.path("epoch").asLong(), done.toString());
        qemuIo(unixUri(svm), "read -P 0x33 0 8M", "read -P 0x11 8M 8M", "write -P 0x55 15M 1M");
        assertEquals(0, secondary.terminate(STOP), secondary.output());

        assertRange(secondaryDisk, 0, 8 * MIB, 0x33);
        assertRange(secondaryDisk, 8 * MIB, 7 * MIB, 0x11);
        assertRange(secondaryDisk, 15 * MIB, MIB, 0x55);
        final ReplicaStateFile.State state = ReplicaStateFile.read(dir.resolve("hidden.img.state"));
        assertEquals(ReplicaStateFile.Phase.CLEAN, state.phase(), state.toString());
        assertEquals(ReplicaStateFile.FLAG_FAILED_OVER, state.flags(), state.toString());
        assertEquals(1, state.epoch(), state.toString());

        // The survivor's disk never becomes a secondary again without a resync: the split-brain guard.
        final Commands.Result again = understudy(secondaryArgs(false).toArray(String[]::new));
        assertEquals(1, again.exitCode(), again.output());
        assertTrue(again.output().contains("split-brain guard (rule SB-SURVIVOR)"), again.output());
    }

    /** {@code --on-peer-loss failover}: the secondary commits on its own once the primary's heartbeats stop. */
    @Test
    void secondaryFailsOverOnItsOwnWhenTheConfiguredPolicySaysSo() throws Exception
    {
        startPair(false, HEARTBEAT_TIMEOUT_MS, 3000, "--on-peer-loss", "failover");
        qemuIo(unixUri(pvm), "write -P 0x44 0 1M");
        understudyOk("checkpoint", "--control", primaryControl.toString());
        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M");          // unfinished epoch: rolled back by the failover
        qemuIo(unixUri(svm), "write -P 0x33 4M 1M");
        primary.kill();
        secondary.awaitLine("automatic failover done", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 10_000));
        final JsonNode done = status(secondaryControl);
        assertEquals("done", done.path("state").asText(), done.toString());
        qemuIo(unixUri(svm), "read -P 0x44 0 1M", "read -P 0x11 1M 3M", "read -P 0x33 4M 1M", "read -P 0x11 5M 11M");
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertRange(secondaryDisk, 0, MIB, 0x44);
        assertRange(secondaryDisk, MIB, 3 * MIB, 0x11);
        assertRange(secondaryDisk, 4 * MIB, MIB, 0x33);
        assertRange(secondaryDisk, 5 * MIB, 11 * MIB, 0x11);
    }

    /** Spec 3.2 over processes: the secondary crashes, the primary degrades, keeps the guest and the bitmap. */
    @ParameterizedTest(name = "shared={0}")
    @ValueSource(booleans = {false, true})
    void failoverOnThePrimaryAfterTheSecondaryIsKilled(final boolean shared) throws Exception
    {
        startPair(shared);
        qemuIo(unixUri(pvm), "write -P 0x22 0 1M");
        understudyOk("checkpoint", "--control", primaryControl.toString());

        final String name = "secondary killed";
        final long killed = System.nanoTime();
        secondary.kill();
        primary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 2000));
        final long reportedMillis = (System.nanoTime() - killed) / 1_000_000;
        System.out.printf("%s: peer loss reported %d ms after kill -9%n", name, reportedMillis);
        assertTrue(reportedMillis < HEARTBEAT_TIMEOUT_MS + 1000, "peer loss reported after " + reportedMillis + " ms");

        qemuIo(unixUri(pvm), "write -P 0x66 4M 2M", "read -P 0x66 4M 2M");
        final JsonNode degraded = status(primaryControl);
        assertEquals("degraded", degraded.path("state").asText(), degraded.toString());
        assertFalse(degraded.path("error").isNull(), degraded.toString());
        assertEquals("lost", degraded.path("peer").path("link").asText(), degraded.toString());
        assertEquals(2 * MIB / 65536, degraded.path("dirty-clusters").asLong(), degraded.toString());
        final Commands.Result checkpoint = understudy("checkpoint", "--control", primaryControl.toString());
        assertNotEquals(0, checkpoint.exitCode(), checkpoint.output());
        assertTrue(checkpoint.output().contains("degraded"), checkpoint.output());

        understudyOk("failover", "--control", primaryControl.toString());
        qemuIo(unixUri(pvm), "write -P 0x77 10M 64k", "read -P 0x77 10M 64k");
        final JsonNode alone = status(primaryControl);
        assertEquals("done", alone.path("state").asText(), alone.toString());
        assertEquals(2 * MIB / 65536 + 1, alone.path("dirty-clusters").asLong(), alone.toString());
        assertEquals(0, primary.terminate(STOP), primary.output());

        assertRange(primaryDisk, 0, MIB, 0x22);
        assertRange(primaryDisk, MIB, 3 * MIB, 0x11);
        assertRange(primaryDisk, 4 * MIB, 2 * MIB, 0x66);
        assertRange(primaryDisk, 10 * MIB, 65536, 0x77);
    }

    /**
     * AX-07: stop(failover=false) on the secondary empties A and H and leaves S as the primary wrote it; the SVM
     * then sees S (non-shared) or is refused (shared: the disk belongs to the primary alone).
     */
    @ParameterizedTest(name = "shared={0}")
    @ValueSource(booleans = {false, true})
    void stopWithoutFailoverOnTheSecondaryEmptiesBothOverlays(final boolean shared) throws Exception
    {
        startPair(shared);
        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M");
        qemuIo(unixUri(svm), "write -P 0x33 0 1M");
        assertRange(hidden, 8 * MIB, MIB, 0x11);
        assertRange(active, 0, MIB, 0x33);

        understudyOk("stop", "--control", secondaryControl.toString());
        final JsonNode stopped = status(secondaryControl);
        assertEquals("done", stopped.path("state").asText(), stopped.toString());
        assertTrue(stopped.path("error").isNull(), stopped.toString());
        if (shared)
        {
            final Commands.Result refused = Commands.exec("qemu-io", "-f", "raw", "-c", "read 0 4k", unixUri(svm));
            assertTrue(refused.output().contains("read failed"), refused.output());
        }
        else
        {
            qemuIo(unixUri(svm), "read -P 0x11 0 1M", "read -P 0x22 8M 1M");
        }
        primary.awaitLine("the secondary ended the control link: replication stopped on the secondary", STARTUP);
        final JsonNode primaryStatus = status(primaryControl);
        assertEquals("degraded", primaryStatus.path("state").asText(), primaryStatus.toString());
        assertEquals("peer-goodbye", primaryStatus.path("peer").path("link").asText(), primaryStatus.toString());
        awaitAllZero(hidden);
        awaitAllZero(active);
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertRange(secondaryDisk, 0, 8 * MIB, 0x11);
        assertRange(secondaryDisk, 8 * MIB, MIB, 0x22);
        assertRange(secondaryDisk, 9 * MIB, 7 * MIB, 0x11);
    }

    /** Shared disk: originals shipped into H before the PVM's write, SVM isolated, stop --failover rolls back. */
    @Test
    void sharedDiskCheckpointAndFailoverOnTheSecondary() throws Exception
    {
        startPair(true);
        qemuIo(unixUri(pvm), "write -P 0x22 8M 8M");
        assertRange(primaryDisk, 8 * MIB, 8 * MIB, 0x22);
        assertRange(hidden, 8 * MIB, 8 * MIB, 0x11);
        qemuIo(unixUri(svm), "read -P 0x11 0 16M");

        understudyOk("checkpoint", "--control", primaryControl.toString());
        final JsonNode status = status(secondaryControl);
        assertEquals(1, status.path("epoch").asLong(), status.toString());
        assertEquals("shared", status.path("mode").asText(), status.toString());
        qemuIo(unixUri(svm), "read -P 0x11 0 8M", "read -P 0x22 8M 8M");

        qemuIo(unixUri(pvm), "write -P 0x44 12M 1M");          // unfinished epoch
        qemuIo(unixUri(svm), "write -P 0x33 0 1M");
        primary.kill();
        secondary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 2000));
        understudyOk("stop", "--failover", "--control", secondaryControl.toString());
        assertEquals("done", status(secondaryControl).path("state").asText());
        assertEquals(0, secondary.terminate(STOP), secondary.output());

        assertRange(primaryDisk, 0, MIB, 0x33);
        assertRange(primaryDisk, MIB, 7 * MIB, 0x11);
        assertRange(primaryDisk, 8 * MIB, 8 * MIB, 0x22);
    }

    /** A hung secondary (SIGSTOP) is found by heartbeats alone; the pair degrades and stays so after SIGCONT. */
    @Test
    void hungSecondaryIsDeclaredLostByHeartbeatAndGuestWritesGoOn() throws Exception
    {
        startPair(false);
        qemuIo(unixUri(pvm), "write -P 0x22 0 64k");
        final long stopped = System.nanoTime();
        secondary.signal("STOP");
        primary.awaitLine("peer lost: no heartbeat from .* for " + HEARTBEAT_TIMEOUT_MS + " ms",
            Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 2000));
        final long reportedMillis = (System.nanoTime() - stopped) / 1_000_000;
        // The silence is timed from the last heartbeat received, up to one interval (plus jitter) before the stop.
        assertTrue(reportedMillis >= HEARTBEAT_TIMEOUT_MS - 2 * HEARTBEAT_MS &&
            reportedMillis < HEARTBEAT_TIMEOUT_MS + 1000,
            "peer loss reported after " + reportedMillis + " ms");
        System.out.printf("hung secondary: peer loss reported %d ms after SIGSTOP (timeout %d ms)%n", reportedMillis,
            HEARTBEAT_TIMEOUT_MS);
        qemuIo(unixUri(pvm), "write -P 0x33 1M 64k", "read -P 0x33 1M 64k");
        secondary.signal("CONT");
        Thread.sleep(3L * HEARTBEAT_MS);
        final JsonNode status = status(primaryControl);
        assertEquals("degraded", status.path("state").asText(), status.toString());
        assertTrue(status.path("error").path("reason").asText().contains("no heartbeat"), status.toString());
        assertEquals(2, status.path("dirty-clusters").asLong(), status.toString());
        assertFalse(status.path("forwarding").asBoolean(), status.toString());
        assertEquals(0, primary.terminate(STOP), primary.output());
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertRange(primaryDisk, MIB, 65536, 0x33);
        assertRange(secondaryDisk, MIB, 65536, 0x11); // never forwarded after the loss: the bitmap says so
        assertRange(secondaryDisk, 0, 65536, 0x22);
    }

    /**
     * A forwarded write that misses its deadline degrades the primary while the control link is still up; the
     * primary says GOODBYE so the secondary's status no longer claims a live pair. The secondary is stopped
     * (SIGSTOP) for less than the heartbeat timeout but longer than the forwarding deadline.
     */
    @Test
    void forwardingDeadlineDegradesThePrimaryAndTellsTheSecondary() throws Exception
    {
        startPair(false, 5000, 300);
        qemuIo(unixUri(pvm), "write -P 0x22 0 64k");
        secondary.signal("STOP");
        qemuIo(unixUri(pvm), "write -P 0x33 1M 64k");          // completes with the local result at the deadline
        primary.awaitLine("forwarding stopped: peer did not answer a forwarded request before its deadline",
            STARTUP);
        secondary.signal("CONT");
        secondary.awaitLine("the primary ended the control link \\(it dropped this secondary\\): forwarding " +
            "stopped", STARTUP);
        final JsonNode secondaryStatus = status(secondaryControl);
        assertEquals("peer-goodbye", secondaryStatus.path("peer").path("link").asText(), secondaryStatus.toString());
        final JsonNode primaryStatus = status(primaryControl);
        assertEquals("degraded", primaryStatus.path("state").asText(), primaryStatus.toString());
        assertEquals("ETIMEDOUT", primaryStatus.path("error").path("errno").asText(), primaryStatus.toString());
        assertEquals(2, primaryStatus.path("dirty-clusters").asLong(), primaryStatus.toString());
        qemuIo(unixUri(pvm), "write -P 0x44 2M 64k", "read -P 0x33 1M 64k", "read -P 0x44 2M 64k");
        assertEquals(0, primary.terminate(STOP), primary.output());
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertRange(primaryDisk, 2 * MIB, 65536, 0x44);
        assertRange(secondaryDisk, 2 * MIB, 65536, 0x11);
    }

    /** A primary whose peer is a plain NBD server: no control link, checkpoint drains and flushes only. */
    @Test
    void primaryForwardingToAPlainNbdServer() throws Exception
    {
        primaryDisk = dir.resolve("p.img");
        pvm = dir.resolve("pvm.sock");
        primaryControl = dir.resolve("primary.ctl");
        final Path plain = dir.resolve("plain.img");
        fill(primaryDisk, SIZE, 0x11);
        fill(plain, SIZE, 0x11);
        final DaemonProcess serve = start(List.of("serve", "--disk", plain.toString(), "--listen", ":0", "--export",
            "colo", "--io", "threads"));
        final Matcher port = serve.awaitLine("NBD URI nbd://127\\.0\\.0\\.1:(\\d+)/colo", STARTUP);
        primary = start(List.of("primary", "--disk", primaryDisk.toString(), "--socket", pvm.toString(),
            "--control", primaryControl.toString(), "--io", "threads", "--peer",
            "nbd://127.0.0.1:" + port.group(1) + "/colo", "--peer-control", "127.0.0.1:1"));
        primary.awaitLine("no control link answers", STARTUP);
        primary.awaitLine("primary ready", STARTUP);
        qemuIo(unixUri(pvm), "write -P 0x22 2M 3M", "write -z 6M 1M");
        final String report = understudyOk("checkpoint", "--control", primaryControl.toString());
        assertTrue(report.contains("\"epoch\":1"), report);
        final JsonNode status = status(primaryControl);
        assertEquals("foreign", status.path("peer").path("link").asText(), status.toString());
        assertEquals("running", status.path("state").asText(), status.toString());

        // stop(failover=false) on the primary: guest I/O is refused from then on, nothing more is forwarded.
        understudyOk("stop", "--control", primaryControl.toString());
        assertEquals("done", status(primaryControl).path("state").asText());
        final Commands.Result refused = Commands.exec("qemu-io", "-f", "raw", "-c", "write -P 0x99 0 64k",
            unixUri(pvm));
        assertTrue(refused.output().contains("write failed"), refused.output());
        assertEquals(0, primary.terminate(STOP), primary.output());
        assertEquals(0, serve.terminate(STOP), serve.output());
        assertRange(plain, 2 * MIB, 3 * MIB, 0x22);
        assertRange(plain, 6 * MIB, MIB, 0);
        assertSameBytes(primaryDisk, plain);
    }

    /** A secondary fed by a foreign primary (here qemu-io on the sink) checkpoints alone (AT-08). */
    @Test
    void secondaryFedByAForeignPrimaryCheckpointsAlone() throws Exception
    {
        final PeerTransport.Peer peer = startSecondary(false);
        final String sink = peer.nbdUri();
        qemuIo(sink, "write -P 0x22 8M 8M");
        qemuIo(unixUri(svm), "read -P 0x11 0 16M");
        final String report = understudyOk("checkpoint", "--control", secondaryControl.toString());
        assertTrue(report.contains("\"epoch\":1"), report);
        qemuIo(unixUri(svm), "read -P 0x11 0 8M", "read -P 0x22 8M 8M");
        final JsonNode status = status(secondaryControl);
        assertEquals("none", status.path("peer").path("link").asText(), status.toString());

        // An Understudy primary starting at epoch 0 does not match the secondary's checkpoints: refused.
        final Path late = dir.resolve("late.img");
        fill(late, SIZE, 0x11);
        final Commands.Result refused = understudy("primary", "--disk", late.toString(), "--socket",
            dir.resolve("late.sock").toString(), "--control", dir.resolve("late.ctl").toString(), "--peer", sink,
            "--peer-control", peer.control());
        assertEquals(1, refused.exitCode(), refused.output());
        assertTrue(refused.output().contains("refused the link (epoch): the primary is at epoch 0, the " +
            "secondary at 1"), refused.output());
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertRange(secondaryDisk, 8 * MIB, 8 * MIB, 0x22);
    }

    /**
     * AX-13/AX-14 with volatile overlays, and AX-22: a crashed secondary's S is never offered again without a
     * resync; while it runs, S, H and A are locked against a second daemon and against qemu-io.
     */
    @Test
    void killedSecondaryRefusesToRestartUntilResyncedAndLocksItsFiles() throws Exception
    {
        startSecondary(false);
        final Commands.Result second = understudy("secondary", "--disk", secondaryDisk.toString(), "--hidden",
            dir.resolve("h2").toString(), "--active", dir.resolve("a2").toString(), "--socket",
            dir.resolve("svm2.sock").toString(), "--control", dir.resolve("c2.ctl").toString(), "--listen",
            PeerTransport.NBD.listen());
        assertEquals(1, second.exitCode(), second.output());
        assertEquals("understudy: " + secondaryDisk + ": in use by another process (locked); stop it first, two " +
            "writers would corrupt the disk", second.output().strip());
        for (final Path file : List.of(secondaryDisk, hidden, active))
        {
            final Commands.Result write = Commands.exec("qemu-io", "-f", "raw", "-c", "write 0 4k", file.toString());
            assertEquals(1, write.exitCode(), write.output());
            assertTrue(write.output().contains("Failed to lock byte"), write.output());
        }
        final Path state = dir.resolve("hidden.img.state");
        assertEquals(ReplicaStateFile.Phase.RUNNING, ReplicaStateFile.read(state).phase());

        secondary.kill();
        secondary = start(secondaryArgs(false));
        assertEquals(1, secondary.waitFor(STARTUP), secondary.output());
        assertTrue(secondary.output().contains("understudy: " + state + ": the previous run stopped while RUNNING " +
            "(epoch 0): S may hold primary writes of an unfinished epoch; resynchronise S from the primary, then " +
            "start with --resynced"), secondary.output());

        startSecondary(false, "--resynced");
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertEquals(ReplicaStateFile.Phase.CLEAN, ReplicaStateFile.read(state).phase());
        startSecondary(false);
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        qemuIo(secondaryDisk.toString(), "write -P 0x44 0 4k");
        assertRange(secondaryDisk, 0, 4096, 0x44);

        // AX-13: a crash inside a checkpoint leaves CHECKPOINTING (A emptied, H maybe not): refused the same way.
        try (ReplicaStateFile record = ReplicaStateFile.open(state, 1))
        {
            record.write(ReplicaStateFile.Phase.CHECKPOINTING, 5, 0);
        }
        secondary = start(secondaryArgs(false));
        assertEquals(1, secondary.waitFor(STARTUP), secondary.output());
        assertTrue(secondary.output().contains("the previous run stopped while CHECKPOINTING (epoch 5)"),
            secondary.output());
    }

    private void startPair(final boolean shared) throws Exception
    {
        startPair(shared, HEARTBEAT_TIMEOUT_MS, 3000);
    }

    private void startPair(
        final boolean shared, final int heartbeatTimeoutMillis, final int ioTimeoutMillis,
        final String... secondaryExtraArgs) throws Exception
    {
        final PeerTransport.Peer peer = startSecondary(shared, secondaryExtraArgs);
        primaryDisk = shared ? secondaryDisk : dir.resolve("p.img");
        pvm = dir.resolve("pvm.sock");
        primaryControl = dir.resolve("primary.ctl");
        if (!shared)
        {
            fill(primaryDisk, SIZE, 0x11);
        }
        final List<String> primaryArgsHead = new ArrayList<>(List.of("primary", "--disk", primaryDisk.toString(),
            "--socket", pvm.toString(), "--control", primaryControl.toString(), "--io", "threads",
            "--heartbeat-ms", String.valueOf(HEARTBEAT_MS), "--heartbeat-timeout-ms",
            String.valueOf(heartbeatTimeoutMillis), "--io-timeout-ms", String.valueOf(ioTimeoutMillis)));
        if (shared)
        {
            primaryArgsHead.add("--shared");
        }
        primaryArgsHead.addAll(peer.args());
        primaryArgs = primaryArgsHead;
        primary = start(primaryArgsHead);
        primary.awaitLine("control link up", STARTUP);
        primary.awaitLine("primary ready", STARTUP);
        secondary.awaitLine("primary linked", STARTUP);
    }

    /** Starts the secondary on free ports; the peer says where its sink and control link listen. */
    private PeerTransport.Peer startSecondary(final boolean shared, final String... extraArgs) throws Exception
    {
        secondary = start(secondaryArgs(shared, extraArgs));
        return PeerTransport.NBD.peer(secondary.awaitLine(PeerTransport.NBD.readyLine(), STARTUP), null);
    }

    private List<String> secondaryArgs(final boolean shared, final String... extraArgs) throws IOException
    {
        secondaryDisk = dir.resolve("s.img");
        hidden = dir.resolve("hidden.img");
        active = dir.resolve("active.img");
        svm = dir.resolve("svm.sock");
        secondaryControl = dir.resolve("secondary.ctl");
        fill(secondaryDisk, SIZE, 0x11);
        final List<String> args = new ArrayList<>(List.of("secondary", "--disk", secondaryDisk.toString(),
            "--hidden", hidden.toString(), "--active", active.toString(), "--socket", svm.toString(), "--control",
            secondaryControl.toString(), "--listen", PeerTransport.NBD.listen(), "--io", "threads"));
        if (shared)
        {
            args.add("--shared");
        }
        args.addAll(List.of(extraArgs));
        return args;
    }

    private DaemonProcess start(final List<String> args) throws IOException
    {
        final DaemonProcess daemon = new DaemonProcess(args.toArray(String[]::new));
        daemons.add(daemon);
        return daemon;
    }
}
