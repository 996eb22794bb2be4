package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationSecondary;
import io.understudy.engine.replication.ReplicationStage;
import io.understudy.nbd.control.ControlLink;
import io.understudy.nbd.control.ControlLinkListener;
import io.understudy.nbd.control.ControlProtocol;
import io.understudy.nbd.control.Hello;
import io.understudy.nbd.server.NbdServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * {@code understudy secondary}: the secondary sidecar. Serves the forwarding sink (NBD on TCP, export named by
 * {@code --listen}), the SVM's disk A > H > S (NBD on {@code --socket}), the control link for an Understudy
 * primary (TCP, by default on the sink's port + 1) and the control socket, until SIGINT/SIGTERM.
 */
@Command(
    name = "secondary",
    mixinStandardHelpOptions = true,
    description = {
        "Run the secondary sidecar: forwarded writes arrive on --listen (NBD), the SVM's disk is served on",
        "--socket, the primary's control link is accepted on --control-listen (default: the --listen host and",
        "port + 1; port 0 picks free ports for both), operator commands arrive on --control.",
        "Replication starts at once (epoch 0, empty overlays). Runs until SIGINT or SIGTERM, then drains,",
        "flushes and exits 0. The disk, H and A are locked against other writers while the daemon runs.",
        "A run that did not end cleanly (see --state) leaves S unusable until resynchronised: the next start is",
        "refused unless --resynced is given."})
final class SecondaryCommand implements Callable<Integer>
{
    static final String VIEW_EXPORT = "svm";

    /** Requests in flight at most on the sink and on the view each: the NBD server's per-connection window. */
    static final int QUEUE_DEPTH = 64;

    @Mixin
    ReplicaOptions replica;

    @Mixin
    CountersOptions countersOptions;

    @Option(names = "--hidden", required = true, paramLabel = "FILE",
        description = "Hidden overlay H (originals of clusters the primary overwrote); created sparse, emptied.")
    Path hidden;

    @Option(names = "--active", required = true, paramLabel = "FILE",
        description = "Active overlay A (the SVM's writes); created sparse, emptied.")
    Path active;

    @Option(names = "--listen", required = true, paramLabel = "nbd://HOST:PORT/EXPORT",
        converter = NbdUri.Converter.class, description = "Where the forwarding sink is served.")
    NbdUri listen;

    @Option(names = "--control-listen", paramLabel = "HOST:PORT", converter = ListenAddress.Converter.class,
        description = "Where the primary's control link is accepted (default: --listen's host, port + 1).")
    ListenAddress controlListen;

    @Option(names = "--state", paramLabel = "FILE",
        description = "Replication state record (phase, epoch), synced at every phase change (default: the " +
            "--hidden file's name + .state).")
    Path statePath;

    @Option(names = "--resynced", description = "S was resynchronised from the primary after an unclean stop: " +
        "start although the state file says the previous run crashed.")
    boolean resynced;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private final PeerStatus peer = new PeerStatus();
    private ReplicationSecondary secondary;
    private DaemonCounters counters;
    private ReplicaStateFile state;
    /** FLAG_FAILED_OVER once a failover committed; volatile: set on a control thread, read at exit. */
    private volatile int cleanFlags;
    private PrintWriter out;

    @Override
    public Integer call() throws Exception
    {
        out = spec.commandLine().getOut();
        validate();
        final ShutdownSignal shutdown = new ShutdownSignal();
        final FileOptions options = FileOptions.readWrite();
        // In shared mode the primary owns the disk (and locks it); this side only reads S until a failover.
        try (DiskLock _ = replica.shared ? null : DiskLock.acquire(replica.disk, true);
            DiskLock _ = DiskLock.acquire(touch(hidden), true);
            DiskLock _ = DiskLock.acquire(touch(active), true);
            ReplicaStateFile _ = state = openState();
            DaemonCounters _ = counters = countersOptions.open(DaemonRole.SECONDARY, replica.shared, replica.control,
                out);
            IoEngine engine = IoEngines.create(replica.ioMode);
            BlockDevice disk = open(engine, options))
        {
            final FileOverlayStorage hiddenStorage = overlay(engine, hidden, disk.size(), options);
            final FileOverlayStorage activeStorage;
            try
            {
                activeStorage = overlay(engine, active, disk.size(), options);
            }
            catch (final RuntimeException e)
            {
                hiddenStorage.close();
                throw e;
            }
            secondary = new ReplicationSecondary(disk, hiddenStorage, activeStorage, (int)replica.clusterSize,
                replica.shared, QUEUE_DEPTH);
            counters.secondary(secondary, peer);
            try (ReplicationSecondary _ = secondary;
                DutyCycle _ = new DutyCycle("secondary-duty", counters.dutyCycle(secondary::doWork)))
            {
                final ControlResult started = secondary.start(ReplicationMode.SECONDARY);
                if (!started.ok())
                {
                    throw new UserException("start failed: " + started.reason());
                }
                state.write(ReplicaStateFile.Phase.RUNNING, secondary.epoch(), 0);
                serve(shutdown);
            }
            Flush.finalFlush(disk, replica.disk.toString(), replica.ioTimeoutMillis);
            markClean();
        }
        out.println("understudy: stopped cleanly");
        return 0;
    }

    private void validate()
    {
        replica.validate();
        InjectedFault.validate(replica.faults, Set.of("disk", "hidden", "active"));
        if (hidden.equals(active) || hidden.equals(replica.disk) || active.equals(replica.disk))
        {
            throw new UserException("--disk, --hidden and --active must be three different files");
        }
        if (statePath == null)
        {
            statePath = hidden.resolveSibling(hidden.getFileName() + ".state");
        }
        if (statePath.equals(hidden) || statePath.equals(active) || statePath.equals(replica.disk))
        {
            throw new UserException("--state must differ from --disk, --hidden and --active");
        }
        if (controlListen == null)
        {
            controlListen = new ListenAddress(listen.host(), listen.port() == 0 ? 0 : listen.port() + 1);
        }
        if (controlListen.port() != 0 && controlListen.port() == listen.port() &&
            controlListen.host().equals(listen.host()))
        {
            throw new UserException("--control-listen must differ from --listen");
        }
    }

    private void serve(final ShutdownSignal shutdown) throws InterruptedException
    {
        try (ControlLinkListener links = listenForPrimary();
            NbdServer sink = Exports.tcp(secondary.sink(), listen, counters);
            NbdServer _ = Exports.unix(secondary.view(), VIEW_EXPORT, replica.socket, out, counters);
            ControlServer control = startControl())
        {
            out.printf("understudy: secondary ready (%s, %d bytes, cluster %d): forwarding sink nbd://%s:%d/%s, " +
                "control link %s:%d, SVM export nbd+unix:///?socket=%s, control socket %s%n",
                replica.shared ? "shared" : "non-shared", secondary.view().size(), replica.clusterSize, listen.host(),
                sink.tcpPort(), listen.export(), controlListen.host(), links.port(), replica.socket, control.path());
            out.flush();
            final String signal = shutdown.await();
            out.printf("understudy: %s received: draining, flushing%n", signal);
            out.flush();
            peer.goodbye(false, "the secondary is shutting down");
        }
    }

    private ControlLinkListener listenForPrimary()
    {
        try
        {
            return new ControlLinkListener(controlListen.host(), controlListen.port(),
                replica.heartbeatTimeoutMillis, secondary::epoch, new Acceptor());
        }
        catch (final IOException e)
        {
            throw new UserException("control link " + controlListen.host() + ":" + controlListen.port() + ": " +
                e.getMessage(), e);
        }
    }

    private ControlServer startControl()
    {
        try
        {
            return new ControlServer(replica.control, this::execute);
        }
        catch (final IOException e)
        {
            throw new UserException(e.getMessage(), e);
        }
    }

    private ObjectNode execute(final String command, final JsonNode arguments) throws ControlException
    {
        final long timeoutNanos = TimeUnit.MILLISECONDS.toNanos(
            StatusJson.timeoutMillis(arguments, replica.ioTimeoutMillis));
        return switch (command)
        {
            case "status" -> status();
            case "checkpoint" ->
            {
                if (peer.isUp())
                {
                    throw new ControlException(ControlException.COORDINATED_BY_PRIMARY, "an Understudy primary is " +
                        "linked (" + peer.link().peerName() + "): run checkpoint on the primary");
                }
                yield StatusJson.checkpoint(checkpoint(timeoutNanos));
            }
            case "failover" -> failover(timeoutNanos);
            case "stop" ->
            {
                if (arguments.path("failover").asBoolean(false))
                {
                    yield failover(timeoutNanos);
                }
                final ControlResult result = secondary.shutdown(timeoutNanos);
                peer.goodbye(false, "replication stopped on the secondary");
                yield StatusJson.control("stop", result);
            }
            default -> throw new ControlException(ControlException.COMMAND_NOT_FOUND, "unknown command '" + command +
                "' (the secondary knows status, checkpoint, failover, stop)");
        };
    }

    private ObjectNode status()
    {
        final ObjectNode status = StatusJson.status("secondary", replica.shared, secondary, secondary.latchedError(),
            peer);
        status.put("cluster-size", replica.clusterSize);
        status.putObject("commit").put("done-bytes", secondary.committedBytes())
            .put("total-bytes", secondary.commitTotalBytes());
        counters.toJson(status);
        return status;
    }

    /** Failover: forwarding refused first (the engine does it), the peer told, then the commit awaited. */
    private ObjectNode failover(final long timeoutNanos) throws ControlException
    {
        final long start = System.nanoTime();
        final ControlResult result;
        synchronized (state)
        {
            if (secondary.stage() == ReplicationStage.RUNNING)
            {
                state.write(ReplicaStateFile.Phase.FAILOVER, secondary.epoch(), 0);
            }
            result = secondary.failover(timeoutNanos);
        }
        peer.goodbye(true, "the secondary took over");
        final ObjectNode reply = StatusJson.control("failover", result);
        if (result != ControlResult.IGNORED || secondary.stage() == ReplicationStage.FAILOVER)
        {
            final int committed = secondary.awaitFailover(Math.max(0, timeoutNanos - (System.nanoTime() - start)));
            if (committed < 0)
            {
                throw new ControlException(ControlException.GENERIC, "failover commit " + (committed ==
                    -Errno.ETIMEDOUT ? "still running at the deadline (see status)" : "failed: " +
                    Errno.name(committed)) + "; state " + secondary.state().label());
            }
            cleanFlags = ReplicaStateFile.FLAG_FAILED_OVER;
            state.write(ReplicaStateFile.Phase.CLEAN, secondary.epoch(), cleanFlags);
        }
        return reply.put("committed-bytes", secondary.committedBytes())
            .put("commit-ms", TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
    }

    /**
     * Synced before and after the engine's checkpoint: a crash in between leaves CHECKPOINTING (AX-13), whose S
     * nobody may take for either epoch's disk.
     */
    private CheckpointReport checkpoint(final long timeoutNanos)
    {
        // Serialised with the failover's record: a checkpoint refused because a failover began must not write
        // RUNNING over FAILOVER.
        synchronized (state)
        {
            state.write(ReplicaStateFile.Phase.CHECKPOINTING, secondary.epoch(), 0);
            final CheckpointReport report = secondary.checkpoint(timeoutNanos);
            if (secondary.stage() == ReplicationStage.RUNNING)
            {
                state.write(ReplicaStateFile.Phase.RUNNING, secondary.epoch(), 0);
            }
            return report;
        }
    }

    /**
     * After the final flush S holds every acknowledged write; a failover that failed or never finished left S
     * half-committed, and the record keeps saying FAILOVER.
     */
    private void markClean()
    {
        final ReplicationStage stage = secondary.stage();
        if (stage != ReplicationStage.FAILOVER && stage != ReplicationStage.FAILOVER_FAILED)
        {
            state.write(ReplicaStateFile.Phase.CLEAN, secondary.epoch(), cleanFlags);
        }
    }

    /** Refuses to start over a crashed run's S unless the operator says it was resynchronised. */
    private ReplicaStateFile openState()
    {
        final ReplicaStateFile.State previous = ReplicaStateFile.read(statePath);
        if (previous != null && previous.phase() != ReplicaStateFile.Phase.CLEAN && !resynced)
        {
            throw new UserException(statePath + ": the previous run stopped while " + previous.phase() +
                " (epoch " + previous.epoch() + "): S may hold primary writes of an unfinished epoch; resynchronise " +
                "S from the primary, then start with --resynced");
        }
        if (previous != null && (previous.flags() & ReplicaStateFile.FLAG_FAILED_OVER) != 0)
        {
            out.printf("understudy: note: %s is the survivor's disk of a failover at epoch %d%n", replica.disk,
                previous.epoch());
        }
        return ReplicaStateFile.open(statePath, ThreadLocalRandom.current().nextLong());
    }

    /** The lock needs the file; the overlay's storage truncates it after the lock is held. */
    private static Path touch(final Path path)
    {
        try
        {
            Files.newByteChannel(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE).close();
            return path;
        }
        catch (final IOException e)
        {
            throw new UserException(path + ": cannot create (" + e.getMessage() + ")", e);
        }
    }

    private BlockDevice open(final IoEngine engine, final FileOptions options)
    {
        try
        {
            return InjectedFault.wrap(replica.faults, "disk", engine.open(replica.disk, options));
        }
        catch (final IOException e)
        {
            throw new UserException(e.getMessage(), e);
        }
    }

    /** An overlay starts empty whatever the file held: its contents belong to an epoch nobody can vouch for. */
    private FileOverlayStorage overlay(
        final IoEngine engine, final Path path, final long size, final FileOptions options)
    {
        try
        {
            final String target = path.equals(hidden) ? "hidden" : "active";
            return FileOverlayStorage.create(engine, path, size, options,
                file -> InjectedFault.wrap(replica.faults, target, file));
        }
        catch (final IOException e)
        {
            throw new UserException(path + ": " + e.getMessage(), e);
        }
    }

    /**
     * Accepts one Understudy primary whose disk, cluster size and mode match ours, once: after a link ended,
     * replication never resumes silently with whoever connects next.
     */
    private final class Acceptor implements ControlLinkListener.Acceptor
    {
        @Override
        public ControlLinkListener.Refusal check(final Hello hello)
        {
            if (secondary.stage() != ReplicationStage.RUNNING)
            {
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_NOT_RUNNING, "the secondary is " +
                    secondary.state().label());
            }
            if (hello.diskSize() != secondary.view().size())
            {
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_DISK_SIZE, "the primary's disk has " +
                    hello.diskSize() + " bytes, the secondary's " + secondary.view().size());
            }
            if (hello.clusterSize() != replica.clusterSize)
            {
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_CLUSTER_SIZE, "the primary uses " +
                    hello.clusterSize() + "-byte clusters, the secondary " + replica.clusterSize);
            }
            if (hello.shared() != replica.shared)
            {
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_MODE, "the primary is " +
                    (hello.shared() ? "shared" : "non-shared") + ", the secondary is not");
            }
            if (peer.isUp())
            {
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_BUSY, "a primary is linked already (" +
                    peer.link().peerName() + ")");
            }
            if (peer.link() != null)
            {
                // The pair diverged when the old link ended: the new primary's disk may hold writes S never saw.
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_NOT_RUNNING, "the previous primary's " +
                    "link ended (" + peer.link().reason() + "): fail over, or restart the pair with a full resync");
            }
            if (hello.epoch() != secondary.epoch())
            {
                // S already holds checkpoints this primary never made (e.g. a foreign primary's).
                return new ControlLinkListener.Refusal(ControlProtocol.REFUSE_EPOCH, "the primary is at epoch " +
                    hello.epoch() + ", the secondary at " + secondary.epoch());
            }
            return null;
        }

        @Override
        public ControlLink.Listener listenerFor(final Hello hello)
        {
            return new ControlLink.Listener()
            {
                @Override
                public ControlLink.CheckpointAnswer onCheckpointPrepare(
                    final long deadlineNanos, final long primaryEpoch)
                {
                    if (primaryEpoch != secondary.epoch())
                    {
                        return new ControlLink.CheckpointAnswer(-Errno.EINVAL, secondary.epoch(), "epoch mismatch: " +
                            "the primary is at " + primaryEpoch + ", the secondary at " + secondary.epoch());
                    }
                    final CheckpointReport report = checkpoint(Math.max(0, deadlineNanos - System.nanoTime()));
                    return new ControlLink.CheckpointAnswer(report.result(), report.epoch(), report.reason());
                }

                @Override
                public void onLost(final String reason)
                {
                    out.printf("understudy: peer lost: %s (failover is an operator action: understudy failover " +
                        "--control %s)%n", reason, replica.control);
                    out.flush();
                }

                @Override
                public void onGoodbye(final boolean failover, final String reason)
                {
                    out.printf("understudy: the primary ended the control link%s: %s%n",
                        failover ? " (it dropped this secondary)" : "", reason);
                    out.flush();
                }
            };
        }

        @Override
        public void onLink(final ControlLink link, final Hello hello)
        {
            peer.link(link);
            out.printf("understudy: primary linked from %s (generation %x, heartbeat %d ms, timeout %d ms)%n",
                link.peerName(), hello.generationId(), hello.heartbeatIntervalMillis(), hello.heartbeatTimeoutMillis());
            out.flush();
        }
    }
}
