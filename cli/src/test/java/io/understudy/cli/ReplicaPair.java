package io.understudy.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.understudy.cli.DiskFiles.fill;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_MS;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_TIMEOUT_MS;
import static io.understudy.cli.ReplicaTestSettings.STARTUP;

/**
 * A non-shared replication pair as an operator runs it: a secondary and a primary daemon started through
 * {@code bin/understudy} over one {@link PeerTransport}, on files in one directory, with the guest's and the SVM's
 * exports on unix sockets. Both disks start as {@link #PATTERN}; the daemons and the client processes tracked here
 * are killed on {@link #close()} if a test left them running. Fields are the files and sockets the tests read and
 * drive.
 */
final class ReplicaPair implements AutoCloseable
{
    /** Every byte of S and P at the start. */
    static final int PATTERN = 0x11;

    final PeerTransport transport;
    final int size;
    final Path dir;
    final Path secondaryDisk;
    final Path hidden;
    final Path active;
    final Path svm;
    final Path secondaryControl;
    final Path primaryDisk;
    final Path pvm;
    final Path primaryControl;
    /** The shared media driver's directory when the transport needs one (Aeron IPC), else null. */
    final Path aeronDir;
    DaemonProcess secondary;
    DaemonProcess primary;
    PeerTransport.Peer peer;

    private final List<DaemonProcess> daemons = new ArrayList<>();
    private final List<Process> clients = new ArrayList<>();
    private int heartbeatTimeoutMillis = HEARTBEAT_TIMEOUT_MS;
    private int ioTimeoutMillis = 3000;

    /** Creates the disks, and starts the shared media driver if the transport needs one. */
    ReplicaPair(final Path dir, final PeerTransport transport, final int size) throws IOException, InterruptedException
    {
        this.dir = dir;
        this.transport = transport;
        this.size = size;
        secondaryDisk = dir.resolve("s.img");
        hidden = dir.resolve("hidden.img");
        active = dir.resolve("active.img");
        svm = dir.resolve("svm.sock");
        secondaryControl = dir.resolve("secondary.ctl");
        primaryDisk = dir.resolve("p.img");
        pvm = dir.resolve("pvm.sock");
        primaryControl = dir.resolve("primary.ctl");
        fill(secondaryDisk, size, PATTERN);
        fill(primaryDisk, size, PATTERN);
        aeronDir = transport.needsSharedMediaDriver() ?
            Path.of("/dev/shm", "understudy-it-" + ProcessHandle.current().pid() + "-" + System.nanoTime()) : null;
        if (aeronDir != null)
        {
            start(List.of("media-driver", "--aeron-dir", aeronDir.toString())).awaitLine("media driver ready",
                STARTUP);
        }
    }

    /** Deadlines the primary proposes (its values govern both ends); set before {@link #startPrimary}. */
    ReplicaPair deadlines(final int heartbeatTimeoutMillis, final int ioTimeoutMillis)
    {
        this.heartbeatTimeoutMillis = heartbeatTimeoutMillis;
        this.ioTimeoutMillis = ioTimeoutMillis;
        return this;
    }

    /** Starts the secondary, then the primary, and waits until they are linked. */
    ReplicaPair start() throws Exception
    {
        startSecondary();
        startPrimary();
        return this;
    }

    /** Starts the secondary on free ports and waits until it is ready; {@link #peer} says where it listens. */
    PeerTransport.Peer startSecondary(final String... extraArgs) throws Exception
    {
        secondary = start(secondaryArgs(transport.listen(), extraArgs));
        peer = transport.peer(secondary.awaitLine(transport.readyLine(), STARTUP), aeronDir);
        return peer;
    }

    List<String> secondaryArgs(final String listen, final String... extraArgs)
    {
        final List<String> args = new ArrayList<>(List.of("secondary", "--disk", secondaryDisk.toString(),
            "--hidden", hidden.toString(), "--active", active.toString(), "--socket", svm.toString(), "--control",
            secondaryControl.toString(), "--listen", listen, "--io", "threads"));
        args.addAll(transport.daemonArgs(aeronDir));
        args.addAll(List.of(extraArgs));
        return args;
    }

    /** Starts the primary towards {@link #peer} and waits until it serves the guest and the secondary saw it. */
    DaemonProcess startPrimary(final String... extraArgs) throws Exception
    {
        primary = start(primaryArgs(peer, extraArgs));
        primary.awaitLine("control link up", STARTUP);
        primary.awaitLine("primary ready", STARTUP);
        secondary.awaitLine("primary linked", STARTUP);
        return primary;
    }

    List<String> primaryArgs(final PeerTransport.Peer to, final String... extraArgs)
    {
        return primaryArgs(primaryDisk, pvm, primaryControl, to, extraArgs);
    }

    /** Arguments of a primary on other files than this pair's (a second or a mismatched primary). */
    List<String> primaryArgs(
        final Path disk, final Path socket, final Path control, final PeerTransport.Peer to, final String... extraArgs)
    {
        final List<String> args = new ArrayList<>(List.of("primary", "--disk", disk.toString(),
            "--socket", socket.toString(), "--control", control.toString(), "--io", "threads",
            "--heartbeat-ms", String.valueOf(HEARTBEAT_MS), "--heartbeat-timeout-ms",
            String.valueOf(heartbeatTimeoutMillis), "--io-timeout-ms", String.valueOf(ioTimeoutMillis)));
        args.addAll(to.args());
        args.addAll(List.of(extraArgs));
        return args;
    }

    /** A secondary listening on {@code port} as the primary is told it, before it runs. */
    PeerTransport.Peer peerAt(final int port)
    {
        return transport.peer(port, aeronDir);
    }

    /** Starts any daemon, to be killed on {@link #close()} if the test leaves it running. */
    DaemonProcess start(final List<String> args) throws IOException
    {
        final DaemonProcess daemon = new DaemonProcess(args.toArray(String[]::new));
        daemons.add(daemon);
        return daemon;
    }

    /** Starts nbdsh running {@code script} on {@code uri} (see {@link Commands#nbdsh}), killed on close. */
    Process nbdsh(final String uri, final String script) throws IOException
    {
        return track(Commands.nbdsh(uri, dir, script));
    }

    /** A client process (e.g. a qemu-io held in flight) to be killed on {@link #close()} if still running. */
    Process track(final Process client)
    {
        clients.add(client);
        return client;
    }

    String pvmUri()
    {
        return Commands.unixUri(pvm);
    }

    String svmUri()
    {
        return Commands.unixUri(svm);
    }

    @Override
    public void close()
    {
        clients.forEach(Process::destroyForcibly);
        // The daemons first, the shared media driver (started first) last.
        for (int i = daemons.size() - 1; i >= 0; i--)
        {
            daemons.get(i).close();
        }
        AeronDirectories.removeLeftBy(daemons, aeronDir);
    }
}
