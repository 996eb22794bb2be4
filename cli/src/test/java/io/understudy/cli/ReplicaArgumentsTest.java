package io.understudy.cli;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoOffload;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.StringWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Option validation of the replication commands, in-process: usage errors exit 2, bad values 1, one line each. */
class ReplicaArgumentsTest
{
    @TempDir
    Path dir;

    private final InProcessCli cli = new InProcessCli();
    private final StringWriter out = cli.out;
    private final StringWriter err = cli.err;


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
            assertEquals(0, cli.run(command[0], "--help"), command[0]);
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
        assertEquals(2, cli.run("secondary", "--disk", disk().toString()));
        assertTrue(err.toString().contains("--hidden") && err.toString().contains("--listen"), err.toString());
    }

    @Test
    void transportIsChosenByTheUriSchemeAndOthersAreRejected() throws IOException
    {
        assertEquals(2, cli.run(secondary("--listen", "aeron:udp?interface=1.2.3.4").toArray(String[]::new)));
        assertTrue(err.toString().contains("needs endpoint=HOST:PORT"), err.toString());
        assertEquals(2, cli.run(secondary("--listen", "aeron:tcp?endpoint=1.2.3.4:5").toArray(String[]::new)));
        assertTrue(err.toString().contains("expected aeron:udp?endpoint=HOST:PORT or aeron:ipc"), err.toString());
        assertEquals(1, cli.run(primary("--peer", "aeron:ipc").toArray(String[]::new)));
        assertTrue(err.toString().contains("aeron:ipc needs --aeron-dir"), err.toString());
        assertEquals(1, cli.run(primary("--peer", "aeron:udp?endpoint=127.0.0.1:5", "--peer-control", "127.0.0.1:6")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--peer-control is for NBD peers"), err.toString());
        assertEquals(1, cli.run(primary("--peer", "nbd://127.0.0.1:5/x", "--aeron-dir", "/dev/shm/x")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--aeron-dir is for aeron: URIs"), err.toString());
        assertEquals(2, cli.run(primary("--peer", "tcp://127.0.0.1:10809/colo").toArray(String[]::new)));
        assertTrue(err.toString().contains("unsupported transport 'tcp'"), err.toString());
        assertEquals(2, cli.run(primary("--peer", "nbd://127.0.0.1:10809").toArray(String[]::new)));
        assertTrue(err.toString().contains("must name one export"), err.toString());
        assertEquals(2, cli.run(primary("--peer", "nbd://127.0.0.1:10809/a?x=1").toArray(String[]::new)));
    }

    @Test
    void peerLossActionIsReportOrFailover() throws IOException
    {
        assertEquals(2, cli.run(primary("--peer", "nbd://127.0.0.1:5/x", "--on-peer-loss", "panic")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--on-peer-loss") && err.toString().contains("REPORT, FAILOVER"),
            err.toString());
    }

    @Test
    void aeronUrisKeepTheChannelAndNameTheEndpoint()
    {
        final AeronUri udp = (AeronUri)PeerUri.parse("aeron:udp?endpoint=10.0.0.2:40123|mtu=8192");
        assertEquals("10.0.0.2:40123", udp.channel().endpoint());
        assertTrue(!udp.isIpc());
        assertTrue(((AeronUri)PeerUri.parse("aeron:ipc")).isIpc());
        assertThrows(CommandLine.TypeConversionException.class, () -> PeerUri.parse("aeron:udp?endpoint=x:99999"));
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
        assertEquals(1, cli.run(primary("--peer", "nbd://127.0.0.1:1/x", "--heartbeat-ms", "500",
            "--heartbeat-timeout-ms", "500").toArray(String[]::new)));
        assertTrue(err.toString().contains("--heartbeat-timeout-ms (500) must exceed --heartbeat-ms (500)"),
            err.toString());
    }

    @Test
    void ioOffloadIsAllOrFlushesAndFlushesNeedAWorker() throws IOException
    {
        assertEquals(2, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--io-offload", "reads")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--io-offload") && err.toString().contains("[ALL, FLUSHES]"),
            err.toString());
        assertEquals(1, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--io-offload", "flushes",
            "--io-workers", "0").toArray(String[]::new)));
        assertTrue(err.toString().contains("--io-offload flushes needs --io-workers of 1 or more"), err.toString());
    }

    @Test
    void ioThreadsDefaultToInlineExceptFlushesOnAnAeronSecondary()
    {
        final ReplicaOptions defaults = new ReplicaOptions();
        assertEquals(IoOffload.FLUSHES, defaults.ioOffload(true));
        assertEquals(2, defaults.ioWorkers(true));
        assertEquals(IoOffload.ALL, defaults.ioOffload(false));
        assertEquals(0, defaults.ioWorkers(false));

        final ReplicaOptions inline = new ReplicaOptions();
        inline.ioWorkers = 0;
        assertEquals(0, inline.ioWorkers(true), "an explicit 0 runs everything inline, flushes too");

        final ReplicaOptions flushWorkers = new ReplicaOptions();
        flushWorkers.ioOffload = IoOffload.FLUSHES;
        assertEquals(2, flushWorkers.ioWorkers(false), "asking for offloaded flushes brings workers for them");
    }

    @Test
    void clusterSizeMustBeAPowerOfTwoInRange() throws IOException
    {
        assertEquals(1, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--cluster-size", "48K")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--cluster-size must be a power of two"), err.toString());
        assertEquals(1, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--cluster-size", "2M")
            .toArray(String[]::new)));
    }

    @Test
    void hiddenClusterSizeMustBeAPowerOfTwoNoLargerThanTheClusterSize() throws IOException
    {
        for (final String refused : List.of("128K", "12K", "2K"))
        {
            err.getBuffer().setLength(0);
            assertEquals(1, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--hidden-cluster-size", refused)
                .toArray(String[]::new)), refused);
            assertTrue(err.toString().contains("--hidden-cluster-size must be a power of two in [4K, --cluster-size " +
                "65536]"), err.toString());
        }
    }

    @Test
    void cowCopyIsMemoryOrKernel() throws IOException
    {
        assertEquals(2, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--cow-copy", "reflink")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--cow-copy") && err.toString().contains("MEMORY, KERNEL"), err.toString());
    }

    @Test
    void overlaysMustBeDistinctFiles() throws IOException
    {
        final Path disk = disk();
        assertEquals(1, cli.run("secondary", "--disk", disk.toString(), "--hidden", dir.resolve("o.img").toString(),
            "--active", dir.resolve("o.img").toString(), "--socket", dir.resolve("s").toString(), "--control",
            dir.resolve("c").toString(), "--listen", "nbd://127.0.0.1:0/x"));
        assertTrue(err.toString().contains("three different files"), err.toString());
        assertFalse(Files.exists(dir.resolve("o.img")));
    }

    @Test
    void stateFileMustNotBeAnOverlay() throws IOException
    {
        final Path disk = disk();
        assertEquals(1, cli.run("secondary", "--disk", disk.toString(), "--hidden", dir.resolve("h.img").toString(),
            "--active", dir.resolve("a.img").toString(), "--state", dir.resolve("a.img").toString(), "--socket",
            dir.resolve("s").toString(), "--control", dir.resolve("c").toString(), "--listen", "nbd://127.0.0.1:0/x"));
        assertTrue(err.toString().contains("--state must differ from --disk, --hidden and --active"), err.toString());
        assertFalse(Files.exists(dir.resolve("a.img")));
    }

    @Test
    void missingDiskFailsWithAReason()
    {
        assertEquals(1, cli.run("primary", "--disk", dir.resolve("nope.img").toString(), "--socket",
            dir.resolve("s").toString(), "--control", dir.resolve("c").toString(), "--peer", "nbd://127.0.0.1:1/x"));
        assertTrue(err.toString().contains("no such file"), err.toString());
    }

    @Test
    void primaryWithoutAReachablePeerFailsAfterTheConnectTimeout() throws IOException
    {
        assertEquals(1, cli.run(primary("--peer", "nbd://127.0.0.1:1/x", "--connect-timeout-ms", "200")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("cannot reach the peer nbd://127.0.0.1:1/x"), err.toString());
    }

    @Test
    void thinClientsNeedAControlSocketWithADaemonBehindIt()
    {
        for (final String command : List.of("checkpoint", "failover", "stop", "status"))
        {
            assertEquals(2, cli.run(command), command);
            err.getBuffer().setLength(0);
            assertEquals(1, cli.run(command, "--control", dir.resolve("none.ctl").toString()), command);
            assertTrue(err.toString().contains("no daemon answers on this control socket"), err.toString());
            assertEquals(1, err.toString().strip().lines().count(), err.toString());
        }
        assertEquals(1, cli.run("checkpoint", "--control", dir.resolve("none.ctl").toString(), "--timeout-ms", "0"));
        assertTrue(err.toString().contains("--timeout-ms must be positive"), err.toString());
    }

    @Test
    void injectedFaultsParseAndBadOnesAreUsageErrors() throws IOException
    {
        final InjectedFault.Converter converter = new InjectedFault.Converter();
        assertEquals(new InjectedFault("hidden", FaultInjectingDevice.Kind.WRITE, 3, false, Errno.EIO),
            converter.convert("hidden:write:3:EIO"));
        assertEquals(new InjectedFault("disk", FaultInjectingDevice.Kind.WRITE_ZEROES, 1, true, Errno.ENOSPC),
            converter.convert("disk:zeroes:1+:ENOSPC"));
        final String[][] bad = {
            {"disk:write:1", "expected TARGET:KIND:NTH[+]:ERRNO"},
            {"disk:trim:1:EIO", "KIND must be read, write, flush, discard or zeroes, not 'trim'"},
            {"disk:read:0:EIO", "NTH counts from 1, not 0"},
            {"disk:read:x+:EIO", "NTH must be a request number, not 'x+'"},
            {"disk:read:1:EWHAT", "ERRNO must be a name such as EIO or ENOSPC, not 'EWHAT'"}};
        for (final String[] value : bad)
        {
            err.getBuffer().setLength(0);
            assertEquals(2, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--inject-fault", value[0])
                .toArray(String[]::new)), value[0]);
            assertTrue(err.toString().contains("--inject-fault '" + value[0] + "': " + value[1]), err.toString());
        }
    }

    @Test
    void injectedFaultTargetsDependOnTheCommand() throws IOException
    {
        assertEquals(1, cli.run(primary("--peer", "nbd://127.0.0.1:1/x", "--inject-fault", "hidden:write:1:EIO")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("--inject-fault target 'hidden' must be one of disk for this command"),
            err.toString());
        err.getBuffer().setLength(0);
        assertEquals(1, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--inject-fault", "hidden:write:1:EIO",
            "--inject-fault", "hidden:write:2+:EIO").toArray(String[]::new)));
        assertTrue(err.toString().contains("--inject-fault: more than one rule for hidden:write"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(1, cli.run(secondary("--listen", "nbd://127.0.0.1:0/x", "--inject-fault", "overlay:read:1:EIO")
            .toArray(String[]::new)));
        assertTrue(err.toString().contains("must be one of active, disk, hidden"), err.toString());
        out.getBuffer().setLength(0);
        assertEquals(0, cli.run("secondary", "--help"));
        assertTrue(out.toString().contains("TESTING AID"), out.toString());
    }

    /** Only a named target is wrapped (no cost otherwise); the rule fails exactly the chosen request. */
    @Test
    void injectedFaultWrapsOnlyItsTargetAndFailsTheNthRequest() throws IOException
    {
        final List<InjectedFault> faults = List.of(new InjectedFault.Converter().convert("disk:write:2:EIO"));
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0);
            Arena arena = Arena.ofConfined();
            BlockDevice file = engine.open(disk(), FileOptions.readWrite()))
        {
            assertSame(file, InjectedFault.wrap(faults, "hidden", file));
            final BlockDevice disk = InjectedFault.wrap(faults, "disk", file);
            final MemorySegment buffer = arena.allocate(4096, 4096);
            final int[] results = new int[3];
            for (int i = 0; i < results.length; i++)
            {
                final int n = i;
                assertTrue(disk.write(0, buffer, 4096, 0, (cookie, result) -> results[n] = result, i));
            }
            assertArrayEquals(new int[] {4096, -Errno.EIO, 4096}, results);
        }
    }
}
