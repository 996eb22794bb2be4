package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;

import static io.understudy.cli.Commands.awaitState;
import static io.understudy.cli.Commands.awaitStatus;
import static io.understudy.cli.Commands.qemuIo;
import static io.understudy.cli.Commands.qemuIoFails;
import static io.understudy.cli.Commands.status;
import static io.understudy.cli.Commands.understudy;
import static io.understudy.cli.Commands.understudyOk;
import static io.understudy.cli.Commands.unixUri;
import static io.understudy.cli.DiskFiles.assertRange;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_TIMEOUT_MS;
import static io.understudy.cli.ReplicaTestSettings.MIB;
import static io.understudy.cli.ReplicaTestSettings.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The spec's 7 internal failure cases (3.4) through real daemons: faults are injected into the daemons'
 * files with {@code --inject-fault} (every request of a kind from the first one on, so the count of requests
 * qemu-io or the engine issues does not matter), qemu-io is the guest, and the files and {@code status} are
 * checked byte for byte afterwards. Disks of 16 MiB filled with 0x11; heartbeats from {@link ReplicaTestSettings}.
 * Runs once per {@link PeerTransport}.
 */
@ParameterizedClass(name = "{0}")
@EnumSource(PeerTransport.class)
class FailureCasesIT
{
    private static final int CLUSTERS_PER_MIB = MIB / 65536;

    @TempDir
    Path dir;

    private final PeerTransport transport;
    private ReplicaPair pair;
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

    FailureCasesIT(final PeerTransport transport)
    {
        this.transport = transport;
    }

    @AfterEach
    void killLeftovers()
    {
        if (pair != null)
        {
            pair.close();
        }
    }

    /**
     * Case 1: the primary's own disk fails a write: the guest sees EIO (AX-20). The mirror forwards in parallel
     * with the local write, so the secondary may have applied it: P and S may differ in that range, and the
     * primary degrades (latched error, dirty bitmap kept, checkpoints refused) rather than let a checkpoint clear
     * the dirty bits over the difference.
     */
    @Test
    void case1_primaryDiskWriteErrorReachesTheGuest() throws Exception
    {
        startPair(List.of(), List.of("disk:write:1+:EIO"));
        qemuIoFails(unixUri(pvm), "write", "Input/output error", "write -P 0x22 8M 1M");
        qemuIo(unixUri(pvm), "read -P 0x11 0 16M");
        assertRange(primaryDisk, 0, SIZE, 0x11);
        assertRange(secondaryDisk, 0, 8 * MIB, 0x11);
        assertRange(secondaryDisk, 9 * MIB, 7 * MIB, 0x11);
        final JsonNode degraded = awaitState(primaryControl, "degraded");
        assertEquals("EIO", degraded.path("error").path("errno").asText(), degraded.toString());
        assertTrue(degraded.path("error").path("reason").asText().startsWith("local disk write failed"),
            degraded.toString());
        assertEquals(CLUSTERS_PER_MIB, degraded.path("dirty-clusters").asLong(), degraded.toString());
        final Commands.Result checkpoint = understudy("checkpoint", "--control", primaryControl.toString());
        assertNotEquals(0, checkpoint.exitCode(), checkpoint.output());
        assertEquals(CLUSTERS_PER_MIB, status(primaryControl).path("dirty-clusters").asLong());
    }

    /**
     * Case 2: the forwarded write fails on the secondary (S refuses it with ENOSPC): the guest's write succeeds,
     * the primary degrades with the error latched, keeps the dirty bitmap and never forwards again.
     */
    @Test
    void case2_forwardingFailureDegradesThePrimaryForGood() throws Exception
    {
        startPair(List.of("disk:write:1+:ENOSPC"), List.of());
        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M", "read -P 0x22 8M 1M");
        assertDegradedByForwarding("ENOSPC");
        assertEquals(CLUSTERS_PER_MIB, status(primaryControl).path("dirty-clusters").asLong());

        // sticky: a later write is not forwarded (no silent gap), only remembered in the bitmap
        qemuIo(unixUri(pvm), "write -P 0x23 12M 64k");
        final JsonNode later = status(primaryControl);
        assertEquals("degraded", later.path("state").asText(), later.toString());
        assertEquals(CLUSTERS_PER_MIB + 1, later.path("dirty-clusters").asLong(), later.toString());
        final Commands.Result checkpoint = understudy("checkpoint", "--control", primaryControl.toString());
        assertNotEquals(0, checkpoint.exitCode(), checkpoint.output());

        assertRange(primaryDisk, 8 * MIB, MIB, 0x22);
        assertRange(primaryDisk, 12 * MIB, 65536, 0x23);
        assertRange(secondaryDisk, 0, SIZE, 0x11);
        qemuIo(unixUri(svm), "read -P 0x11 0 16M");
        assertToldForwardingStopped();
    }

    /** Case 3: the COW copy into H fails: the forwarded write fails (case 2), S keeps its bytes, H stays empty. */
    @Test
    void case3_cowCopyFailureFailsTheForwardedWrite() throws Exception
    {
        startPair(List.of("hidden:write:1+:EIO"), List.of());
        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M", "read -P 0x22 8M 1M");
        assertDegradedByForwarding("EIO");
        assertRange(secondaryDisk, 0, SIZE, 0x11);
        assertRange(hidden, 0, SIZE, 0);
        qemuIo(unixUri(svm), "read -P 0x11 0 16M");
        assertToldForwardingStopped();
    }

    /** Case 4: S fails reads and writes: the forwarded write fails (case 2), the SVM's read through to S fails. */
    @Test
    void case4_secondaryDiskErrorFailsForwardingAndSvmReads() throws Exception
    {
        startPair(List.of("disk:write:1+:EIO", "disk:read:1+:EIO"), List.of());
        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M", "read -P 0x22 8M 1M");
        assertDegradedByForwarding("EIO");
        assertToldForwardingStopped();
        qemuIoFails(unixUri(svm), "read", "Input/output error", "read -P 0x11 0 64k");
        // what the SVM writes whole clusters of lives in A and reads back without S
        qemuIo(unixUri(svm), "write -P 0x33 0 64k", "read -P 0x33 0 64k");
        assertRange(secondaryDisk, 0, SIZE, 0x11);
        assertRange(hidden, 0, SIZE, 0);
        assertRange(active, 0, 65536, 0x33);
    }

    /** Case 5: A fails the SVM's write: the SVM sees the error, nothing else changes, replication goes on. */
    @Test
    void case5_activeDiskErrorReachesTheSvmOnly() throws Exception
    {
        startPair(List.of("active:write:1+:ENOSPC"), List.of());
        qemuIoFails(unixUri(svm), "write", "No space left on device", "write -P 0x33 0 1M");
        qemuIo(unixUri(svm), "read -P 0x11 0 16M");
        assertRange(active, 0, SIZE, 0);
        assertHealthy(secondaryControl, 0);

        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M");
        assertRange(secondaryDisk, 8 * MIB, MIB, 0x22);
        assertRange(hidden, 8 * MIB, MIB, 0x11);
        assertHealthy(primaryControl, 0);
        assertEquals(CLUSTERS_PER_MIB, status(primaryControl).path("dirty-clusters").asLong());
        understudyOk("checkpoint", "--control", primaryControl.toString());
        assertHealthy(primaryControl, 1);
        assertHealthy(secondaryControl, 1);
    }

    /**
     * Case 6: make-empty of A and H is a bitmap swap in memory; the storage is given back afterwards in the
     * background, so a storage fault cannot fail it. What a storage fault can fail is the hole punch of that
     * release (discard): the checkpoint succeeds, the space simply stays used, and the SVM view is exact because
     * the released clusters are unreachable.
     */
    @Test
    void case6_releaseFailureAfterMakeEmptyKeepsTheCheckpointConsistent() throws Exception
    {
        startPair(List.of("active:discard:1+:EIO", "hidden:discard:1+:EIO"), List.of());
        qemuIo(unixUri(svm), "write -P 0x33 0 1M");
        qemuIo(unixUri(pvm), "write -P 0x22 8M 1M");
        assertRange(active, 0, MIB, 0x33);
        assertRange(hidden, 8 * MIB, MIB, 0x11);

        final String report = understudyOk("checkpoint", "--control", primaryControl.toString());
        assertTrue(report.contains("\"epoch\":1"), report);
        assertHealthy(primaryControl, 1);
        assertHealthy(secondaryControl, 1);
        qemuIo(unixUri(svm), "read -P 0x11 0 8M", "read -P 0x22 8M 1M", "read -P 0x11 9M 7M");
        Thread.sleep(300); // the background release has run (and failed) by now
        assertRange(active, 0, MIB, 0x33);       // not given back ...
        assertRange(hidden, 8 * MIB, MIB, 0x11);
        qemuIo(unixUri(svm), "read -P 0x11 0 1M", "write -P 0x44 0 64k", "read -P 0x44 0 64k",
            "read -P 0x11 64k 960k");            // ... and unreachable: the view is the new epoch's
        assertRange(secondaryDisk, 0, 8 * MIB, 0x11);
        assertRange(secondaryDisk, 8 * MIB, MIB, 0x22);
    }

    /**
     * Case 7: the failover commit of A into S fails: the secondary ends in failover-failed with the error latched,
     * and the SVM keeps an exact view (its writes go on landing in A, S untouched).
     */
    @Test
    void case7_failoverCommitFailureLatchesAndKeepsTheSvmViewExact() throws Exception
    {
        startPair(List.of("disk:write:1+:EIO"), List.of());
        qemuIo(unixUri(svm), "write -P 0x33 0 1M");
        primary.kill();
        secondary.awaitLine("peer lost", Duration.ofMillis(HEARTBEAT_TIMEOUT_MS + 3000));

        final Commands.Result failover = understudy("failover", "--control", secondaryControl.toString());
        assertEquals(1, failover.exitCode(), failover.output());
        assertTrue(failover.output().contains("failover commit failed: EIO; state failover-failed"), failover.output());
        final JsonNode failed = awaitState(secondaryControl, "failover-failed");
        assertEquals("EIO", failed.path("error").path("errno").asText(), failed.toString());
        assertTrue(failed.path("error").path("reason").asText().contains("failover commit"), failed.toString());

        qemuIo(unixUri(svm), "read -P 0x33 0 1M", "read -P 0x11 1M 15M", "write -P 0x55 2M 64k",
            "read -P 0x55 2M 64k", "read -P 0x33 0 1M");
        assertRange(secondaryDisk, 0, SIZE, 0x11);
        assertRange(active, 0, MIB, 0x33);
        assertRange(active, 2 * MIB, 65536, 0x55);
        final Commands.Result checkpoint = understudy("checkpoint", "--control", secondaryControl.toString());
        assertNotEquals(0, checkpoint.exitCode(), checkpoint.output());
    }

    /** The secondary stays running without a latch of its own; the primary's goodbye told it why. */
    private void assertToldForwardingStopped() throws Exception
    {
        // The primary degrades first and says goodbye on a later duty cycle: wait for the goodbye to arrive.
        final JsonNode told = awaitStatus(secondaryControl, "/peer/link", "peer-goodbye");
        assertEquals("running", told.path("state").asText(), told.toString());
        assertTrue(told.path("error").isNull(), told.toString());
        assertEquals("peer-goodbye", told.path("peer").path("link").asText(), told.toString());
        assertTrue(told.path("peer").path("reason").asText().contains("forwarding stopped"), told.toString());
    }

    private void assertDegradedByForwarding(final String errno) throws Exception
    {
        final JsonNode degraded = awaitState(primaryControl, "degraded");
        assertEquals(errno, degraded.path("error").path("errno").asText(), degraded.toString());
        assertEquals("forwarded write failed", degraded.path("error").path("reason").asText(), degraded.toString());
        assertEquals(false, degraded.path("forwarding").asBoolean(), degraded.toString());
    }

    private static void assertHealthy(final Path control, final long epoch)
    {
        final JsonNode status = status(control);
        assertEquals("running", status.path("state").asText(), status.toString());
        assertTrue(status.path("error").isNull(), status.toString());
        assertEquals("up", status.path("peer").path("link").asText(), status.toString());
        if (epoch >= 0)
        {
            assertEquals(epoch, status.path("epoch").asLong(), status.toString());
        }
    }

    private void startPair(final List<String> secondaryFaults, final List<String> primaryFaults) throws Exception
    {
        pair = new ReplicaPair(dir, transport, SIZE);
        secondaryDisk = pair.secondaryDisk;
        hidden = pair.hidden;
        active = pair.active;
        svm = pair.svm;
        secondaryControl = pair.secondaryControl;
        primaryDisk = pair.primaryDisk;
        pvm = pair.pvm;
        primaryControl = pair.primaryControl;
        pair.startSecondary(faultArgs(secondaryFaults));
        secondary = pair.secondary;
        pair.startPrimary(faultArgs(primaryFaults));
        primary = pair.primary;
    }

    private static String[] faultArgs(final List<String> faults)
    {
        return faults.stream().flatMap(fault -> Stream.of("--inject-fault", fault)).toArray(String[]::new);
    }
}
