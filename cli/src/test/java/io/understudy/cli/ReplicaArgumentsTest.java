package io.understudy.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Option validation of the replication commands, in-process: usage errors exit 2, bad values 1, one line each. */
class ReplicaArgumentsTest
{
    @TempDir
    Path dir;

    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(final String... args)
    {
        final CommandLine commandLine = Understudy.commandLine();
        commandLine.setOut(new PrintWriter(out, true));
        commandLine.setErr(new PrintWriter(err, true));
        return commandLine.execute(args);
    }

    private Path disk() throws IOException
    {
        final Path disk = dir.resolve("d.img");
        Files.write(disk, new byte[1 << 16]);
        return disk;
    }

    private List<String> secondary(final String... extra) throws IOException
    {
        final List<String> args = new ArrayList<>(List.of("secondary", "--disk", disk().toString(), "--hidden",
            dir.resolve("h.img").toString(), "--active", dir.resolve("a.img").toString(), "--socket",
            dir.resolve("svm.sock").toString(), "--control", dir.resolve("s.ctl").toString()));
        args.addAll(List.of(extra));
        return args;
    }

    private List<String> primary(final String... extra) throws IOException
    {
        final List<String> args = new ArrayList<>(List.of("primary", "--disk", disk().toString(), "--socket",
            dir.resolve("pvm.sock").toString(), "--control", dir.resolve("p.ctl").toString()));
        args.addAll(List.of(extra));
        return args;
    }

    @Test
    void helpOnEveryReplicationCommandExitsZeroAndNamesItsOptions()
    {
        final String[][] expected = {
            {"secondary", "--hidden", "--active", "--listen", "--control-listen", "--shared", "--heartbeat-ms"},
            {"primary", "--peer", "--peer-control", "--shared", "--heartbeat-timeout-ms", "--io-timeout-ms"},
            {"checkpoint", "--control", "--timeout-ms"},
            {"failover", "--control"},
            {"stop", "--failover", "--control"},
            {"status", "--json", "--control"}};
        for (final String[] command : expected)
        {
            out.getBuffer().setLength(0);
            assertEquals(0, run(command[0], "--help"), command[0]);
            for (int i = 1; i < command.length; i++)
            {
                assertTrue(out.toString().contains(command[i]), command[0] + " --help lacks " + command[i] + ":\n" +
                    out);
            }
        }
    }

    @Test
    void secondaryNeedsItsFilesSocketsAndListenUri() throws IOException
    {
        assertEquals(2, run("secondary", "--disk", disk().toString()));
        assertTrue(err.toString().contains("--hidden") && err.toString().contains("--listen"), err.toString());
    }

    @Test
    void transportIsChosenByTheUriSchemeAndOthersAreRejected() throws IOException
    {
        assertEquals(2, run(secondary("--listen", "aeron:udp?endpoint=1.2.3.4:5").toArray(String[]::new)));
        assertTrue(err.toString().contains("unsupported transport 'aeron'"), err.toString());
        assertEquals(2, run(primary("--peer", "tcp://127.0.0.1:10809/colo").toArray(String[]::new)));
        assertTrue(err.toString().contains("unsupported transport 'tcp'"), err.toString());
        assertEquals(2, run(primary("--peer", "nbd://127.0.0.1:10809").toArray(String[]::new)));
        assertTrue(err.toString().contains("must name one export"), err.toString());
        assertEquals(2, run(primary("--peer", "nbd://127.0.0.1:10809/a?x=1").toArray(String[]::new)));
    }

    @Test
    void nbdUrisParseWithDefaultPortAndIpv6()
    {
        assertEquals(new NbdUri("127.0.0.1", 10809, "colo"), NbdUri.parse("nbd://127.0.0.1/colo"));
        assertEquals(new NbdUri("::1", 7000, "disk0"), NbdUri.parse("nbd://[::1]:7000/disk0"));
        assertEquals("nbd://[::1]:7000/disk0", NbdUri.parse("nbd://[::1]:7000/disk0").toString());
        assertThrows(CommandLine.TypeConversionException.class, () -> NbdUri.parse("nbd:///colo"));
        assertThrows(CommandLine.TypeConversionException.class, () -> NbdUri.parse("127.0.0.1:10809"));
    }

    @Test
    void heartbeatTimeoutMustExceedTheInterval() throws IOException
    {
        assertEquals(1, run(primary("--peer", "nbd://127.0.0.1:1/x", "--heartbeat-ms", "500",
            "--heartbeat-timeout-ms", "500").toArray(String[]::new)));
        assertTrue(err.toString().contains("--heartbeat-timeout-ms (500) must exceed --heartbeat-ms (500)"),
            err.toString());
    }

    @Test
    void clusterSizeMustBeAPowerOfTwoInRange() throws IOException
    {
        assertEquals(1, run(secondary("--listen", "nbd://127.0.0.1:0/x", "--cluster-size", "48K")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--cluster-size must be a power of two"), err.toString());
        assertEquals(1, run(secondary("--listen", "nbd://127.0.0.1:0/x", "--cluster-size", "2M")
            .toArray(String[]::new)));
    }

    @Test
    void overlaysMustBeDistinctFiles() throws IOException
    {
        final Path disk = disk();
        assertEquals(1, run("secondary", "--disk", disk.toString(), "--hidden", dir.resolve("o.img").toString(),
            "--active", dir.resolve("o.img").toString(), "--socket", dir.resolve("s").toString(), "--control",
            dir.resolve("c").toString(), "--listen", "nbd://127.0.0.1:0/x"));
        assertTrue(err.toString().contains("three different files"), err.toString());
        assertFalse(Files.exists(dir.resolve("o.img")));
    }

    @Test
    void stateFileMustNotBeAnOverlay() throws IOException
    {
        final Path disk = disk();
        assertEquals(1, run("secondary", "--disk", disk.toString(), "--hidden", dir.resolve("h.img").toString(),
            "--active", dir.resolve("a.img").toString(), "--state", dir.resolve("a.img").toString(), "--socket",
            dir.resolve("s").toString(), "--control", dir.resolve("c").toString(), "--listen", "nbd://127.0.0.1:0/x"));
        assertTrue(err.toString().contains("--state must differ from --disk, --hidden and --active"), err.toString());
        assertFalse(Files.exists(dir.resolve("a.img")));
    }

    @Test
    void missingDiskFailsWithAReason()
    {
        assertEquals(1, run("primary", "--disk", dir.resolve("nope.img").toString(), "--socket",
            dir.resolve("s").toString(), "--control", dir.resolve("c").toString(), "--peer", "nbd://127.0.0.1:1/x"));
        assertTrue(err.toString().contains("no such file"), err.toString());
    }

    @Test
    void primaryWithoutAReachablePeerFailsAfterTheConnectTimeout() throws IOException
    {
        assertEquals(1, run(primary("--peer", "nbd://127.0.0.1:1/x", "--connect-timeout-ms", "200")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("cannot reach the peer nbd://127.0.0.1:1/x"), err.toString());
    }

    @Test
    void thinClientsNeedAControlSocketWithADaemonBehindIt()
    {
        for (final String command : List.of("checkpoint", "failover", "stop", "status"))
        {
            assertEquals(2, run(command), command);
            err.getBuffer().setLength(0);
            assertEquals(1, run(command, "--control", dir.resolve("none.ctl").toString()), command);
            assertTrue(err.toString().contains("no daemon answers on this control socket"), err.toString());
            assertEquals(1, err.toString().strip().lines().count(), err.toString());
        }
        assertEquals(1, run("checkpoint", "--control", dir.resolve("none.ctl").toString(), "--timeout-ms", "0"));
        assertTrue(err.toString().contains("--timeout-ms must be positive"), err.toString());
    }
}
