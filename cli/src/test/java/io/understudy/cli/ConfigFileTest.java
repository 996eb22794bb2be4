package io.understudy.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --config FILE}: fields become the flags they name; every error names the file, line and field. */
class ConfigFileTest
{
    @TempDir
    Path dir;

    private final InProcessCli cli = new InProcessCli();
    private final StringWriter out = cli.out;
    private final StringWriter err = cli.err;

    private Path config(final String text) throws IOException
    {
        final Path file = dir.resolve("colo0.conf");
        Files.writeString(file, text.replace("DIR", dir.toString()));
        return file;
    }

    private static final String SECONDARY = """
        # a secondary sidecar
        role = secondary
        mode = shared
        cluster-size = 128K
        control = DIR/s.ctl          # the operator's socket
        listen = aeron:udp?endpoint=127.0.0.1:40123
        heartbeat-ms = 250

        [disk colo0]
        file = DIR/s.img
        format = raw
        hidden = DIR/h.img
        active = DIR/a.img
        socket = DIR/svm.sock
        """;


    @Test
    void fieldsBecomeTheFlagsTheyNameAndLaterFlagsOverrideThem() throws IOException
    {
        final Path file = config(SECONDARY);
        final CommandLine.ParseResult parsed = Understudy.commandLine().parseArgs("secondary", "--config",
            file.toString(), "--heartbeat-ms", "300");
        final SecondaryCommand secondary = (SecondaryCommand)parsed.subcommand().commandSpec().userObject();
        assertEquals(dir.resolve("s.img"), secondary.replica.disk);
        assertEquals(dir.resolve("h.img"), secondary.hidden);
        assertEquals(dir.resolve("a.img"), secondary.active);
        assertEquals(dir.resolve("svm.sock"), secondary.replica.socket);
        assertEquals(dir.resolve("s.ctl"), secondary.replica.control);
        assertTrue(secondary.replica.shared);
        assertEquals(128 << 10, secondary.replica.clusterSize);
        assertEquals("aeron:udp?endpoint=127.0.0.1:40123", secondary.listen.toString());
        assertEquals(300, secondary.replica.heartbeatMillis);
    }

    @Test
    void errorsNameTheFileTheLineAndTheField() throws IOException
    {
        final String[][] cases = {
            {"cluster-size = 128K", "cluster-size = 64Q", "colo0.conf:4: field 'cluster-size'"},
            {"heartbeat-ms = 250", "heartbeat-rate = 250", "colo0.conf:7: field 'heartbeat-rate': unknown"},
            {"format = raw", "format = qcow2", "colo0.conf:11: field 'format': 'qcow2' is not supported"},
            {"format = raw", "", "[disk colo0]: needs format = raw"},
            {"role = secondary", "role = primary", "colo0.conf:2: field 'role': says primary, but the command is " +
                "secondary"},
            {"mode = shared", "mode = mirrored", "colo0.conf:3: field 'mode': must be shared or non-shared"},
            {"socket = DIR/svm.sock", "socket = DIR/svm.sock\n[disk colo1]", "colo0.conf: [disk colo1]: needs " +
                "format = raw"},
            {"heartbeat-ms = 250", "heartbeat-ms 250", "colo0.conf:7: expected FIELD = VALUE"},
            {"hidden = DIR/h.img", "bogus = 1", "colo0.conf:12: field 'bogus': unknown in [disk colo0]"},
        };
        for (final String[] c : cases)
        {
            final Path file = config(SECONDARY.replace(c[0], c[1]));
            err.getBuffer().setLength(0);
            assertEquals(2, cli.run("secondary", "--config", file.toString()), c[1]);
            assertTrue(err.toString().contains(c[2]), c[1] + " -> " + err);
        }
    }

    @Test
    void aValueTheDaemonRefusesIsTracedToItsLine() throws IOException
    {
        Files.write(dir.resolve("s.img"), new byte[1 << 16]);
        final Path file = config(SECONDARY.replace("heartbeat-ms = 250", "heartbeat-timeout-ms = 100"));
        assertEquals(1, cli.run("secondary", "--config", file.toString()));
        assertTrue(err.toString().contains("colo0.conf:7: field 'heartbeat-timeout-ms': --heartbeat-timeout-ms " +
            "(100) must exceed --heartbeat-ms"), err.toString());
        assertFalse(Files.exists(dir.resolve("s.ctl")), "nothing started");
    }

    private static final String TWO_DISKS = """
        role = secondary
        control = DIR/s.ctl
        heartbeat-ms = 250

        [disk colo0]
        file = DIR/s0.img
        format = raw
        hidden = DIR/h0.img
        active = DIR/a0.img
        socket = DIR/svm0.sock
        listen = nbd://127.0.0.1:41000/colo0

        [disk colo1]
        file = DIR/s1.img
        format = raw
        hidden = DIR/h1.img
        active = DIR/a1.img
        socket = DIR/svm1.sock
        listen = aeron:udp?endpoint=127.0.0.1:41002
        control-listen = 127.0.0.1:41003
        inject-fault = hidden:write:1:EIO
        """;

    @Test
    void severalDiskSectionsDescribeOneSidecarOfSeveralDisks() throws IOException
    {
        final Path file = config(TWO_DISKS);
        final CommandLine.ParseResult parsed = Understudy.commandLine().parseArgs("secondary", "--config",
            file.toString(), "--heartbeat-ms", "300");
        final SecondaryCommand secondary = (SecondaryCommand)parsed.subcommand().commandSpec().userObject();
        final ConfigFile config = secondary.replica.config;
        assertTrue(config.isMultiDisk());
        assertEquals(2, config.disks().size());
        final ConfigFile.DiskSection colo0 = config.disks().get(0);
        final ConfigFile.DiskSection colo1 = config.disks().get(1);
        assertEquals("colo0", colo0.name());
        assertEquals("colo1", colo1.name());
        assertEquals(dir.resolve("s1.img").toString(), colo1.get("--disk").text());
        assertEquals(dir.resolve("svm1.sock").toString(), colo1.get("--socket").text());
        assertEquals("aeron:udp?endpoint=127.0.0.1:41002", colo1.get("--listen").text());
        assertEquals(file + ":20: field 'control-listen'", colo1.get("--control-listen").where());
        assertEquals(1, colo1.all("--inject-fault").size());
        // The first disk still satisfies the command's required options; the sidecar-wide fields are flags.
        assertEquals(dir.resolve("s0.img"), secondary.replica.disk);
        assertEquals("nbd://127.0.0.1:41000/colo0", secondary.listen.toString());
        assertEquals(300, secondary.replica.heartbeatMillis);
        assertEquals(dir.resolve("s.ctl"), secondary.replica.control);
        assertTrue(secondary.replica.faults.isEmpty(), "a disk's fault is not the sidecar's");
    }

    @Test
    void disksThatShareANameAFileASocketOrALinkAreRefusedWithTheLineAndField() throws IOException
    {
        final String[][] cases = {
            {"[disk colo1]", "[disk colo0]", "colo0.conf:13: a second disk named 'colo0' (the first is at " +
                "DIR/colo0.conf:5)"},
            {"file = DIR/s1.img", "file = DIR/s0.img", "colo0.conf:14: field 'file': [disk colo1] uses the file " +
                "DIR/s0.img already given at DIR/colo0.conf:6: field 'file'"},
            {"hidden = DIR/h1.img", "hidden = DIR/a0.img", "colo0.conf:16: field 'hidden': [disk colo1] uses the " +
                "file DIR/a0.img"},
            {"socket = DIR/svm1.sock", "socket = DIR/svm0.sock", "colo0.conf:18: field 'socket': [disk colo1] " +
                "uses the socket DIR/svm0.sock"},
            {"listen = aeron:udp?endpoint=127.0.0.1:41002", "listen = nbd://127.0.0.1:41000/other",
                "colo0.conf:19: field 'listen': [disk colo1] uses the link address nbd://127.0.0.1:41000/other " +
                    "already given at DIR/colo0.conf:11: field 'listen'"},
            {"control-listen = 127.0.0.1:41003", "control-listen = 127.0.0.1:41000", "colo0.conf:20: field " +
                "'control-listen': [disk colo1] uses the link address 127.0.0.1:41000"},
            {"heartbeat-ms = 250", "listen = nbd://127.0.0.1:42000/x", "colo0.conf:3: field 'listen': belongs " +
                "in each [disk NAME] section"},
            {"[disk colo1]", "[disk colo@1]", "colo0.conf:13: a disk name is letters, digits"},
            {"inject-fault = hidden:write:1:EIO", "peer = nbd://127.0.0.1:1/x", "colo0.conf:21: field 'peer': " +
                "unknown in [disk colo1] (known: file, format, active, control-listen, hidden, inject-fault, " +
                "listen, socket, state)"},
        };
        for (final String[] c : cases)
        {
            final Path file = config(TWO_DISKS.replace(c[0], c[1]));
            err.getBuffer().setLength(0);
            assertEquals(2, cli.run("secondary", "--config", file.toString()), c[1]);
            assertTrue(err.toString().contains(c[2].replace("DIR", dir.toString())), c[1] + " -> " + err);
        }
    }

    @Test
    void aSidecarOfSeveralDisksTakesNoPerDiskFlagsAndNamesTheDiskAValueFailsIn() throws IOException
    {
        Files.write(dir.resolve("s0.img"), new byte[1 << 16]);
        final Path file = config(TWO_DISKS);
        assertEquals(1, cli.run("secondary", "--config", file.toString(), "--socket", dir.resolve("x").toString()));
        assertTrue(err.toString().contains("--socket is a per-disk field: " + file + " describes 2 disks"),
            err.toString());
        err.getBuffer().setLength(0);
        assertEquals(1, cli.run("secondary", "--config", file.toString()));
        assertTrue(err.toString().contains("[disk colo1] at " + file + ":13: " + dir.resolve("s1.img") +
            ": no such file"), err.toString());
        assertFalse(Files.exists(dir.resolve("s.ctl")), "nothing started");
    }
}
