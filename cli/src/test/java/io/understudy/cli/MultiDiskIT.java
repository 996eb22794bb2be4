package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
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
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;

import static io.understudy.cli.Commands.awaitStatus;
import static io.understudy.cli.Commands.qemuIo;
import static io.understudy.cli.Commands.status;
import static io.understudy.cli.Commands.understudy;
import static io.understudy.cli.Commands.understudyOk;
import static io.understudy.cli.Commands.unixUri;
import static io.understudy.cli.DiskFiles.assertRange;
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
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A sidecar of several disks at process level: a two-disk secondary and a two-disk primary started through
 * {@code bin/understudy} from config files, each disk with its own link, qemu-io writing different patterns
 * through each disk's exports, the thin clients acting on every disk or on one ({@code --disk}), and exact byte
 * comparisons of every P, S, H and A. Runs over each transport whose links two disks can each have their own of
 * (aeron:ipc is one channel per media driver, so two disks cannot both use it).
 */
@ParameterizedClass(name = "{0}")
@EnumSource(value = PeerTransport.class, names = {"NBD", "AERON_UDP"})
class MultiDiskIT
{
    private static final List<String> DISKS = List.of("d0", "d1");

    @TempDir
    Path dir;

    private final PeerTransport transport;
    private ReplicaPair pair;
    private Path primaryControl;
    private Path secondaryControl;
    private DaemonProcess secondary;
    private DaemonProcess primary;

    MultiDiskIT(final PeerTransport transport)
    {
        this.transport = transport;
    }

    @BeforeEach
    void createDisks() throws Exception
    {
        pair = new ReplicaPair(dir, transport, SIZE);
        primaryControl = dir.resolve("primary.ctl");
        secondaryControl = dir.resolve("secondary.ctl");
        for (final String disk : DISKS)
        {
            fill(file("p", disk), SIZE, ReplicaPair.PATTERN);
            fill(file("s", disk), SIZE, ReplicaPair.PATTERN);
        }
    }

    @AfterEach
    void killLeftovers()
    {
        pair.close();
    }

    private Path file(final String kind, final String disk)
    {
        return dir.resolve(kind + "-" + disk + ".img");
    }

    private Path socket(final String kind, final String disk)
    {
        return dir.resolve(kind + "-" + disk + ".sock");
    }

    private Path config(final String name, final String text) throws IOException
    {
        final Path path = dir.resolve(name);
        Files.writeString(path, text);
        return path;
    }

    /**
     * @param hiddenOfD1 d1's H if not the usual file (null).
     * @param faultOfD1  an {@code inject-fault} rule for d1's files alone, or null.
     */
    private Path secondaryConfig(final String hiddenOfD1, final String faultOfD1) throws IOException
    {
        final StringBuilder text = new StringBuilder("""
            role = secondary
            control = %s
            io = threads
            """.formatted(secondaryControl));
        for (final String disk : DISKS)
        {
            text.append("""

                [disk %s]
                file = %s
                format = raw
                hidden = %s
                active = %s
                socket = %s
                listen = %s
                """.formatted(disk, file("s", disk), "d1".equals(disk) && hiddenOfD1 != null ? hiddenOfD1 :
                file("h", disk), file("a", disk), socket("svm", disk), transport.listen()));
            if ("d1".equals(disk) && faultOfD1 != null)
            {
                text.append("inject-fault = ").append(faultOfD1).append('\n');
            }
        }
        return config("secondary.conf", text.toString());
    }

    /** Starts the secondary and returns each disk's peer as its ready line says, in disk order. */
    private List<PeerTransport.Peer> startSecondary(final String faultOfD1) throws Exception
    {
        secondary = pair.start(List.of("secondary", "--config", secondaryConfig(null, faultOfD1).toString()));
        final List<PeerTransport.Peer> peers = new ArrayList<>();
        for (final String disk : DISKS)
        {
            final Matcher ready = secondary.awaitLine(transport.readyLine().replace("secondary ready",
                "disk " + disk + " ready"), STARTUP);
            peers.add(transport.peer(ready, null));
        }
        secondary.awaitLine("secondary ready \\(non-shared, 2 disks, cluster 65536\\): control socket", STARTUP);
        return peers;
    }

    private void startPrimary(final List<PeerTransport.Peer> peers) throws Exception
    {
        primary = pair.start(List.of("primary", "--config", primaryConfig(peers).toString()));
        primary.awaitLine("primary ready \\(non-shared, 2 disks, cluster 65536\\)", STARTUP);
        for (final String disk : DISKS)
        {
            awaitStatus(secondaryControl, "/disks/" + disk + "/peer/link", "up");
        }
    }

    private Path primaryConfig(final List<PeerTransport.Peer> peers) throws IOException
    {
        final StringBuilder text = new StringBuilder("""
            role = primary
            control = %s
            io = threads
            heartbeat-ms = %d
            heartbeat-timeout-ms = %d
            io-timeout-ms = 3000
            """.formatted(primaryControl, HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS));
        for (int i = 0; i < DISKS.size(); i++)
        {
            final String disk = DISKS.get(i);
            text.append("""

                [disk %s]
                file = %s
                format = raw
                socket = %s
                peer = %s
                """.formatted(disk, file("p", disk), socket("pvm", disk), peers.get(i).uri()));
            if (peers.get(i).control() != null)
            {
                text.append("peer-control = ").append(peers.get(i).control()).append('\n');
            }
        }
        return config("primary.conf", text.toString());
    }

    private String uri(final String kind, final String disk)
    {
        return unixUri(socket(kind, disk));
    }

    /**
     * Guest writes land on their own disk's P and S only; a group checkpoint advances both epochs and empties both
     * H and A; {@code --disk} checkpoints one disk alone; with the primary killed, one failover commits both disks.
     */
    @Test
    void eachDiskReplicatesOnItsOwnLinkAndTheGroupCommandsActOnEveryDiskOrOne() throws Exception
    {
        startPrimary(startSecondary(null));
        qemuIo(uri("pvm", "d0"), "write -P 0x22 0 1M");
        qemuIo(uri("pvm", "d1"), "write -P 0x33 8M 1M");
        // The SVM sees its disk as of the last checkpoint (the originals in H) plus its own writes.
        qemuIo(uri("svm", "d0"), "write -P 0x44 4M 1M", "read -P 0x11 0 1M");
        for (final String kind : List.of("p", "s"))
        {
            assertRange(file(kind, "d0"), 0, MIB, 0x22);
            assertRange(file(kind, "d0"), MIB, SIZE - MIB, 0x11);
            assertRange(file(kind, "d1"), 0, 8 * MIB, 0x11);
            assertRange(file(kind, "d1"), 8 * MIB, MIB, 0x33);
            assertRange(file(kind, "d1"), 9 * MIB, 7 * MIB, 0x11);
        }
        // Each disk's originals went to its own H, the SVM's write to d0's A alone.
        assertRange(file("h", "d0"), 0, MIB, 0x11);
        assertRange(file("h", "d0"), MIB, SIZE - MIB, 0);
        assertRange(file("h", "d1"), 0, 8 * MIB, 0);
        assertRange(file("h", "d1"), 8 * MIB, MIB, 0x11);
        assertRange(file("a", "d0"), 4 * MIB, MIB, 0x44);
        assertRange(file("a", "d1"), 0, SIZE, 0);

        final String group = understudyOk("checkpoint", "--control", primaryControl.toString());
        System.out.println("group checkpoint:\n" + group.strip());
        for (final String disk : DISKS)
        {
            assertTrue(group.contains(disk + ": ok, changed: {\"epoch\":1,"), group);
        }
        for (final Path control : List.of(primaryControl, secondaryControl))
        {
            final JsonNode status = status(control);
            for (final String disk : DISKS)
            {
                assertEquals(1, status.at("/disks/" + disk + "/epoch").asLong(), status.toString());
                assertEquals("running", status.at("/disks/" + disk + "/state").asText(), status.toString());
            }
        }
        for (final String disk : DISKS)
        {
            awaitAllZero(file("h", disk));
            awaitAllZero(file("a", disk));
        }
        final List<String> text = understudyOk("status", "--control", secondaryControl.toString()).lines().toList();
        assertEquals(List.of("role=secondary mode=non-shared disks=2", "  d0: state=running epoch=1 peer=up error=none",
            "  d1: state=running epoch=1 peer=up error=none"), text.subList(0, 3), String.join("\n", text));
        qemuIo(uri("svm", "d0"), "read -P 0x22 0 1M", "read -P 0x11 1M 15M");

        // --disk: only d1 checkpoints; d0's epoch and H stay.
        qemuIo(uri("pvm", "d0"), "write -P 0x55 2M 1M");
        qemuIo(uri("pvm", "d1"), "write -P 0x66 2M 1M");
        final String one = understudyOk("checkpoint", "--control", primaryControl.toString(), "--disk", "d1");
        assertTrue(one.contains("d1: ok, changed: {\"epoch\":2,"), one);
        assertFalse(one.contains("d0:"), one);
        final JsonNode afterOne = status(primaryControl);
        assertEquals(1, afterOne.at("/disks/d0/epoch").asLong(), afterOne.toString());
        assertEquals(2, afterOne.at("/disks/d1/epoch").asLong(), afterOne.toString());
        assertRange(file("h", "d0"), 2 * MIB, MIB, 0x11);
        awaitAllZero(file("h", "d1"));
        final Commands.Result unknown = understudy("checkpoint", "--control", primaryControl.toString(), "--disk",
            "d9");
        assertEquals(1, unknown.exitCode(), unknown.output());
        assertTrue(unknown.output().contains("unknown disk \"d9\" (this sidecar has d0, d1)"), unknown.output());

        // Every disk's counters are in the one file, labelled with the disk's name.
        final JsonNode counters = status(primaryControl).path("counters");
        for (final String disk : DISKS)
        {
            assertTrue(counters.has("epoch@" + disk) && counters.has("nbd-write-bytes:pvm@" + disk),
                counters.toString());
        }
        final String stat = understudyOk("stat", "--counters", primaryControl + ".counters");
        assertTrue(stat.contains("forwarded-bytes@d1"), stat);

        qemuIo(uri("svm", "d0"), "write -P 0x77 12M 1M");
        primary.kill();
        for (final String disk : DISKS)
        {
            awaitStatus(secondaryControl, "/disks/" + disk + "/peer/link", "lost");
        }
        final String failover = understudyOk("failover", "--control", secondaryControl.toString());
        System.out.println("group failover:\n" + failover.strip());
        for (final String disk : DISKS)
        {
            assertTrue(failover.contains(disk + ": ok, changed: "), failover);
            assertEquals("done", status(secondaryControl).at("/disks/" + disk + "/state").asText());
        }
        assertEquals(0, secondary.terminate(STOP), secondary.output());
        assertTrue(secondary.output().contains("stopped cleanly"), secondary.output());

        // d0 at epoch 1 plus the SVM's own write; epoch 2's 0x55 was never checkpointed on d0: rolled back.
        assertRange(file("s", "d0"), 0, MIB, 0x22);
        assertRange(file("s", "d0"), MIB, 11 * MIB, 0x11);
        assertRange(file("s", "d0"), 12 * MIB, MIB, 0x77);
        assertRange(file("s", "d0"), 13 * MIB, 3 * MIB, 0x11);
        // d1 at epoch 2: both of its writes.
        assertRange(file("s", "d1"), 0, 2 * MIB, 0x11);
        assertRange(file("s", "d1"), 2 * MIB, MIB, 0x66);
        assertRange(file("s", "d1"), 3 * MIB, 5 * MIB, 0x11);
        assertRange(file("s", "d1"), 8 * MIB, MIB, 0x33);
        assertRange(file("s", "d1"), 9 * MIB, 7 * MIB, 0x11);
    }

    /** A disk that cannot start is named; the sidecar releases what it opened and the files can be used again. */
    @Test
    void aDiskThatCannotStartIsNamedAndNothingIsLeftOpen() throws Exception
    {
        final Path missing = dir.resolve("no-such-dir").resolve("h-d1.img");
        final Commands.Result failed = understudy("secondary", "--config", secondaryConfig(missing.toString(),
            null).toString());
        assertEquals(1, failed.exitCode(), failed.output());
        assertTrue(failed.output().contains("understudy: disk d1: " + missing + ": cannot create"), failed.output());
        assertFalse(Files.exists(secondaryControl), "no control socket");
        assertFalse(Files.exists(socket("svm", "d0")), "no export of the healthy disk");

        // d0's locks were released: the same sidecar with d1 repaired starts and serves both disks.
        startPrimary(startSecondary(null));
        qemuIo(uri("pvm", "d1"), "write -P 0x5a 0 64k");
        assertRange(file("s", "d1"), 0, 65536, 0x5a);
        assertRange(file("s", "d0"), 0, SIZE, 0x11);
        assertEquals(0, primary.terminate(STOP), primary.output());
        assertEquals(0, secondary.terminate(STOP), secondary.output());
    }

    /**
     * One disk's failover commit fails (S of d1 refuses writes): the group failover still commits d0, then says
     * exactly that d1 failed and why; both disks changed stage. d0's S holds the SVM's write, d1's S is untouched
     * and its A still holds the SVM's write, as with a single disk (FailureCasesIT case 7).
     */
    @Test
    void aDiskWhoseFailoverFailsIsNamedAndTheOtherDiskStillCommits() throws Exception
    {
        startPrimary(startSecondary("disk:write:1+:EIO"));
        qemuIo(uri("svm", "d0"), "write -P 0x33 0 1M");
        qemuIo(uri("svm", "d1"), "write -P 0x44 0 1M");
        primary.kill();
        for (final String disk : DISKS)
        {
            awaitStatus(secondaryControl, "/disks/" + disk + "/peer/link", "lost");
        }
        final Commands.Result failover = understudy("failover", "--control", secondaryControl.toString());
        System.out.println("group failover, d1 failing:\n" + failover.output().strip());
        assertEquals(1, failover.exitCode(), failover.output());
        assertTrue(failover.output().contains("d0: ok, changed: {\"ignored\":false,\"committed-bytes\":1048576,"),
            failover.output());
        assertTrue(failover.output().contains("d1: FAILED, changed: GenericError: failover commit failed: EIO; " +
            "state failover-failed"), failover.output());
        assertTrue(failover.output().contains("failover failed on 1 of 2 disks: d1"), failover.output());
        final JsonNode status = status(secondaryControl);
        assertEquals("done", status.at("/disks/d0/state").asText(), status.toString());
        assertEquals("failover-failed", status.at("/disks/d1/state").asText(), status.toString());
        assertEquals("EIO", status.at("/disks/d1/error/errno").asText(), status.toString());

        qemuIo(uri("svm", "d1"), "read -P 0x44 0 1M", "read -P 0x11 1M 15M");
        secondary.kill();
        assertRange(file("s", "d0"), 0, MIB, 0x33);
        assertRange(file("s", "d0"), MIB, SIZE - MIB, 0x11);
        assertRange(file("s", "d1"), 0, SIZE, 0x11);
        assertRange(file("a", "d1"), 0, MIB, 0x44);
    }

    /**
     * A primary whose second disk finds no peer fails to start naming that disk, after its first disk had
     * linked: nothing is served, the first disk's link is closed (its secondary sees it end) and its lock is
     * released.
     */
    @Test
    void aPrimaryDiskThatCannotReachItsPeerIsNamedAndTheOtherDiskIsReleased() throws Exception
    {
        final List<PeerTransport.Peer> peers = startSecondary(null);
        final PeerTransport.Peer nobody = transport.peer(freePort(), null);
        final Path config = primaryConfig(List.of(peers.get(0), nobody));
        final Commands.Result failed = understudy("primary", "--config", config.toString(), "--connect-timeout-ms",
            "1500");
        assertEquals(1, failed.exitCode(), failed.output());
        assertTrue(failed.output().contains("understudy: disk d1: "), failed.output());
        assertFalse(failed.output().contains("primary ready"), failed.output());
        for (final String disk : DISKS)
        {
            assertFalse(Files.exists(socket("pvm", disk)), "no guest export of " + disk);
        }
        assertFalse(Files.exists(primaryControl), "no control socket");
        awaitLinkEnded("d0");
        assertEquals("none", status(secondaryControl).at("/disks/d1/peer/link").asText());
        // d0's disk is free again: a primary of that disk alone may lock it.
        final Commands.Result alone = understudy("primary", "--disk", file("p", "d0").toString(), "--socket",
            socket("pvm", "d0").toString(), "--control", primaryControl.toString(), "--peer", nobody.uri(),
            "--connect-timeout-ms", "500");
        assertEquals(1, alone.exitCode(), alone.output());
        assertFalse(alone.output().contains("(locked)"), alone.output());
        assertRange(file("s", "d0"), 0, SIZE, 0x11);
        assertRange(file("p", "d0"), 0, SIZE, 0x11);
    }

    /** Waits (10 s at most) until the secondary saw the link of {@code disk} end, by loss or by goodbye. */
    private void awaitLinkEnded(final String disk) throws InterruptedException
    {
        final long deadline = System.nanoTime() + STOP.toNanos() / 3;
        String link = "";
        while (System.nanoTime() - deadline < 0)
        {
            link = status(secondaryControl).at("/disks/" + disk + "/peer/link").asText();
            if ("lost".equals(link) || "peer-goodbye".equals(link))
            {
                return;
            }
            Thread.sleep(20);
        }
        throw new AssertionError("the link of " + disk + " is still " + link);
    }

    private static int freePort() throws IOException
    {
        try (ServerSocket socket = new ServerSocket(0))
        {
            return socket.getLocalPort();
        }
    }
}
