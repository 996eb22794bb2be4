package io.understudy.cli;

import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import io.understudy.engine.io.IoMode;
import io.understudy.nbd.server.NbdServer;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code understudy serve}: exports one disk image over NBD until SIGINT/SIGTERM. */
@Command(
    name = "serve",
    mixinStandardHelpOptions = true,
    description = {
        "Serve a disk image (or block device) over NBD, for QEMU and any NBD client.",
        "Runs until SIGINT or SIGTERM, then finishes in-flight requests, flushes and exits 0."})
final class ServeCommand implements Callable<Integer>
{
    @Option(names = "--disk", required = true, paramLabel = "FILE", description = "Disk image or block device to serve.")
    Path disk;

    @Option(names = "--create", paramLabel = "SIZE", converter = ByteSize.class,
        description = "Create FILE as a sparse image of SIZE (e.g. 10G) if it does not exist.")
    Long createSize;

    @Option(names = "--export", paramLabel = "NAME", defaultValue = "disk",
        description = "Export name (default: ${DEFAULT-VALUE}); the empty name is answered too.")
    String exportName;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Endpoint endpoint;

    static final class Endpoint
    {
        @Option(names = "--socket", paramLabel = "PATH", description = "Listen on a unix domain socket.")
        Path socket;

        @Option(names = "--listen", paramLabel = "HOST:PORT", converter = ListenAddress.Converter.class,
            description = "Listen on TCP (HOST defaults to 127.0.0.1; give 0.0.0.0 to listen everywhere).")
        ListenAddress listen;
    }

    @Option(names = "--read-only", description = "Refuse every write (EPERM); open the file read-only.")
    boolean readOnly;

    @Option(names = "--io", paramLabel = "MODE", defaultValue = "auto", converter = IoModeConverter.class,
        description = "I/O backend: auto, uring or threads (default: ${DEFAULT-VALUE}).")
    IoMode ioMode;

    @Option(names = "--direct", description = "Bypass the page cache (O_DIRECT).")
    boolean direct;

    @Option(names = "--io-workers", paramLabel = "N", defaultValue = "0",
        description = {"Worker threads of the thread backend (default: ${DEFAULT-VALUE}: each NBD connection's "
            + "thread does its own page-cache I/O, which measured fastest; more workers help slow disks)."})
    int ioWorkers;

    @Mixin
    CountersOptions countersOptions;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private DaemonCounters counters;

    @Override
    public Integer call() throws Exception
    {
        if (ioWorkers < 0 || ioWorkers > 64)
        {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--io-workers must be in [0, 64]");
        }
        final PrintWriter out = spec.commandLine().getOut();
        createIfAsked(out);
        final ShutdownSignal shutdown = new ShutdownSignal();
        final FileOptions options = new FileOptions(readOnly, direct, FileOptions.DEFAULT_QUEUE_DEPTH);
        try (DiskLock _ = DiskLock.acquire(disk, !readOnly);
            DaemonCounters _ = counters = countersOptions.open(DaemonRole.SERVE, false,
                endpoint.socket != null ? endpoint.socket : CountersOptions.tcpServeBase(), out);
            IoEngine engine = IoEngines.create(ioMode, ioWorkers);
            BlockDevice device = openDevice(engine, options);
            NbdServer server = startServer(device, out);
            DutyCycle _ = new DutyCycle("serve-duty", counters.dutyCycle(() -> 0)))
        {
            out.printf("understudy: serving %s (%d bytes%s) as export '%s' with I/O backend %s%n",
                disk, device.size(), readOnly ? ", read-only" : "", exportName, engine.choice(disk, options));
            out.printf("understudy: NBD URI %s%n", uri(server));
            out.printf("understudy: attach with: qemu-system-x86_64 -blockdev %s%n", blockdevSpec(server));
            out.flush();
            final String signal = shutdown.await();
            out.printf("understudy: %s received: draining in-flight requests and flushing%n", signal);
            out.flush();
        }
        out.println("understudy: stopped cleanly");
        return 0;
    }

    private void createIfAsked(final PrintWriter out)
    {
        if (createSize == null)
        {
            if (!Files.exists(disk))
            {
                throw new UserException(disk + ": no such file (add --create SIZE to create a sparse image)");
            }
            return;
        }
        if (Files.exists(disk))
        {
            out.printf("understudy: %s exists; --create ignored%n", disk);
            return;
        }
        try (RandomAccessFile file = new RandomAccessFile(disk.toFile(), "rw"))
        {
            file.setLength(createSize);
        }
        catch (final IOException e)
        {
            throw new UserException(disk + ": cannot create (" + e.getMessage() + ")", e);
        }
        out.printf("understudy: created sparse image %s of %d bytes%n", disk, createSize);
    }

    private BlockDevice openDevice(final IoEngine engine, final FileOptions options)
    {
        try
        {
            return engine.open(disk, options);
        }
        catch (final IOException e)
        {
            throw new UserException(e.getMessage(), e);
        }
    }

    private NbdServer startServer(final BlockDevice device, final PrintWriter out)
    {
        final NbdServer server = new NbdServer(new NbdServer.Context()
            .exportName(exportName)
            .description("understudy: " + disk.getFileName())
            .device(device)
            .readOnly(readOnly)
            .errorHandler(counters.errorHandler()));
        try
        {
            if (endpoint.socket != null)
            {
                if (UnixSockets.removeIfStale(endpoint.socket))
                {
                    out.printf("understudy: removed stale socket %s (nobody was listening)%n", endpoint.socket);
                }
                server.bindUnix(endpoint.socket);
            }
            else
            {
                server.bindTcp(endpoint.listen.host(), endpoint.listen.port());
            }
            server.start();
            counters.nbd(server, exportName);
            return server;
        }
        catch (final IOException e)
        {
            server.close();
            throw new UserException(e.getMessage(), e);
        }
    }

    private String uri(final NbdServer server)
    {
        if (endpoint.socket != null)
        {
            return "nbd+unix:///" + exportName + "?socket=" + endpoint.socket.toAbsolutePath();
        }
        final String host = endpoint.listen.host().contains(":") ? "[" + endpoint.listen.host() + "]" :
            endpoint.listen.host();
        return "nbd://" + host + ":" + server.tcpPort() + "/" + exportName;
    }

    private String blockdevSpec(final NbdServer server)
    {
        final String common = "driver=nbd,node-name=understudy0,export=" + exportName;
        if (endpoint.socket != null)
        {
            return common + ",server.type=unix,server.path=" + endpoint.socket.toAbsolutePath();
        }
        return common + ",server.type=inet,server.host=" + endpoint.listen.host() + ",server.port=" + server.tcpPort();
    }
}
