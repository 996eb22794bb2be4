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
}
