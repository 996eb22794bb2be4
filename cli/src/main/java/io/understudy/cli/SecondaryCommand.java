package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.RefusalCode;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationSecondary;
import io.understudy.engine.replication.ReplicationStage;
import io.understudy.nbd.server.NbdServer;
import org.agrona.concurrent.AgentRunner;
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
 * {@code understudy secondary}: the secondary sidecar. Serves the forwarding sink ({@code --listen}: an NBD export
 * on TCP with the control link on a second port, or an Aeron channel carrying both), the SVM's disk A > H > S
 * (NBD on {@code --socket}) and the control socket, until SIGINT/SIGTERM.
 */
@Command(
    name = "secondary",
    mixinStandardHelpOptions = true,
    description = {
        "Run the secondary sidecar: forwarded writes arrive on --listen (NBD or Aeron), the SVM's disk is served",
        "on --socket, operator commands arrive on --control. Over NBD the primary's control link is accepted on",
        "--control-listen (default: the --listen host and port + 1; port 0 picks free ports for both); over",
        "Aeron it shares the --listen channel.",
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

    @Option(names = "--listen", required = true, paramLabel = "URI", converter = PeerUri.Converter.class,
        description = "Where the forwarding sink is served: " + PeerUri.USAGE + ".")
    PeerUri listen;

    @Option(names = "--control-listen", paramLabel = "HOST:PORT", converter = ListenAddress.Converter.class,
        description = "NBD only: where the primary's control link is accepted (default: --listen's host, " +
            "port + 1).")
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
    private final ControlEvents events = new ControlEvents();
    private final StatusWatch watch = new StatusWatch(events, this::status);
    private ReplicationSecondary secondary;
    private DaemonCounters counters;
    /** Set once listening; volatile: status runs on control-socket threads. */
    private volatile SinkEndpoint sinkEndpoint;
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
            IoEngine engine = IoEngines.create(replica.ioMode, replica.ioWorkers);
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
        replica.validateTransport(listen, "--listen");
        if (listen instanceof AeronUri && controlListen != null)
        {
            throw new UserException("--control-listen is for NBD: over Aeron the control messages share the " +
                "--listen channel");
        }
        if (listen instanceof NbdUri nbd)
        {
            if (controlListen == null)
            {
                controlListen = new ListenAddress(nbd.host(), nbd.port() == 0 ? 0 : nbd.port() + 1);
            }
            if (controlListen.port() != 0 && controlListen.port() == nbd.port() &&
                controlListen.host().equals(nbd.host()))
            {
                throw new UserException("--control-listen must differ from --listen");
            }
        }
    }

    private void serve(final ShutdownSignal shutdown) throws InterruptedException
    {
        try (SinkEndpoint sink = listenForPrimary();
            NbdServer _ = Exports.unix(secondary.view(), VIEW_EXPORT, replica.socket, out, counters);
            ControlServer control = startControl();
            AgentRunner _ = watch.start())
        {
            sinkEndpoint = sink;
            out.printf("understudy: secondary ready (%s, %d bytes, cluster %d): %s, SVM export " +
                "nbd+unix:///?socket=%s, control socket %s%n", replica.shared ? "shared" : "non-shared",
                secondary.view().size(), replica.clusterSize, sink.describe(), replica.socket, control.path());
            out.flush();
            final String signal = shutdown.await();
            out.printf("understudy: %s received: draining, flushing%n", signal);
            out.flush();
            peer.goodbye(false, "the secondary is shutting down");
        }
    }

    private SinkEndpoint listenForPrimary()
    {
        return switch (listen)
        {
            case NbdUri nbd -> NbdSinkEndpoint.listen(nbd, controlListen, secondary.sink(),
                replica.heartbeatTimeoutMillis, secondary::epoch, new Acceptor(), counters);
            case AeronUri aeron -> AeronSinkEndpoint.listen(aeron, replica.aeronDir, secondary.sink(),
                replica.heartbeatTimeoutMillis, secondary::epoch, new Acceptor());
        };
    }

    private ControlServer startControl()
    {
        try
        {
            return new ControlServer(replica.control, this::execute, events);
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
            case "failover" -> watch.failover(() -> failover(timeoutNanos));
            case "stop" ->
            {
                if (arguments.path("failover").asBoolean(false))
                {
                    yield watch.failover(() -> failover(timeoutNanos));
                }
                final ControlResult result = secondary.shutdown(timeoutNanos);
                peer.goodbye(false, "replication stopped on the secondary");
                yield StatusJson.control("stop", result);
            }
            default -> throw new ControlException(ControlException.COMMAND_NOT_FOUND, "unknown command '" + command +
                "' (the secondary knows status, checkpoint, failover, stop, subscribe)");
        };
    }

    private ObjectNode status()
    {
        final ObjectNode status = StatusJson.status("secondary", replica.shared, secondary, secondary.latchedError(),
            peer);
        status.put("cluster-size", replica.clusterSize);
        final SinkEndpoint current = sinkEndpoint;
        if (current != null)
        {
            current.toJson(status.putObject("transport"));
        }
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
            // S is now the survivor's own disk: a new generation, which no old primary carries.
            state.generation(ThreadLocalRandom.current().nextLong());
            state.write(ReplicaStateFile.Phase.CLEAN, secondary.epoch(), cleanFlags);
            out.printf("understudy: failed over at epoch %d: S is the survivor's disk, generation now %x%n",
                secondary.epoch(), state.generation());
            out.flush();
        }
        return reply.put("committed-bytes", secondary.committedBytes())
            .put("commit-ms", TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
    }

    /** The --on-peer-loss failover action; its outcome is in the log and in status. */
    private void failoverOnPeerLoss()
    {
        try
        {
            final long timeoutNanos = TimeUnit.MILLISECONDS.toNanos(replica.ioTimeoutMillis);
            final ObjectNode reply = watch.failover(() -> failover(timeoutNanos));
            out.printf("understudy: automatic failover done: %s%n", reply);
        }
        catch (final ControlException | UserException e)
        {
            out.printf("understudy: automatic failover failed: %s%n", e.getMessage());
        }
        out.flush();
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
            final CheckpointReport report = watch.checkpoint(() -> secondary.checkpoint(timeoutNanos));
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
        if (previous != null && (previous.flags() & ReplicaStateFile.FLAG_FAILED_OVER) != 0 && !resynced)
        {
            throw new UserException("split-brain guard (rule SB-SURVIVOR): " + replica.disk + " is the survivor's " +
                "disk of a failover at epoch " + previous.epoch() + " (generation " +
                Long.toHexString(previous.generation()) + "); it may hold writes the old primary never saw. Run " +
                "it as a primary, or resynchronise it from the current primary and start with --resynced");
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
    private final class Acceptor implements LinkAcceptor
    {
        @Override
        public LinkAcceptor.Refusal check(final Hello hello)
        {
            if (cleanFlags == ReplicaStateFile.FLAG_FAILED_OVER)
            {
                return new LinkAcceptor.Refusal(RefusalCode.GENERATION, "rule SB-STALE-PRIMARY: this secondary " +
                    "failed over (generation " + Long.toHexString(state.generation()) + "); its disk is the " +
                    "survivor's: resynchronise the old primary from it");
            }
            if (secondary.stage() != ReplicationStage.RUNNING)
            {
                return new LinkAcceptor.Refusal(RefusalCode.NOT_RUNNING, "the secondary is " +
                    secondary.state().label());
            }
            if (hello.diskSize() != secondary.view().size())
            {
                return new LinkAcceptor.Refusal(RefusalCode.DISK_SIZE, "the primary's disk has " +
                    hello.diskSize() + " bytes, the secondary's " + secondary.view().size());
            }
            if (hello.clusterSize() != replica.clusterSize)
            {
                return new LinkAcceptor.Refusal(RefusalCode.CLUSTER_SIZE, "the primary uses " +
                    hello.clusterSize() + "-byte clusters, the secondary " + replica.clusterSize);
            }
            if (hello.shared() != replica.shared)
            {
                return new LinkAcceptor.Refusal(RefusalCode.MODE, "the primary is " +
                    (hello.shared() ? "shared" : "non-shared") + ", the secondary is not");
            }
            if (peer.isUp())
            {
                return new LinkAcceptor.Refusal(RefusalCode.BUSY, "a primary is linked already (" +
                    peer.link().peerName() + ")");
            }
            if (peer.link() != null && hello.generationId() != state.generation())
            {
                // The pair diverged when the old link ended: the new primary's disk may hold writes S never saw.
                return new LinkAcceptor.Refusal(RefusalCode.GENERATION, "rule SB-OTHER-GENERATION: the primary " +
                    "is of generation " + Long.toHexString(hello.generationId()) + ", the pair of " +
                    Long.toHexString(state.generation()) + " whose link ended (" + peer.link().reason() + "): fail " +
                    "over, or restart the pair with a full resync");
            }
            if (peer.link() != null)
            {
                return new LinkAcceptor.Refusal(RefusalCode.NOT_RUNNING, "the previous link of this primary " +
                    "ended (" + peer.link().reason() + "): replication never resumes silently; fail over, or " +
                    "restart the pair with a full resync");
            }
            if (hello.epoch() != secondary.epoch())
            {
                // S already holds checkpoints this primary never made (e.g. a foreign primary's).
                return new LinkAcceptor.Refusal(RefusalCode.EPOCH, "the primary is at epoch " +
                    hello.epoch() + ", the secondary at " + secondary.epoch());
            }
            return null;
        }

        @Override
        public PeerControl.Listener listenerFor(final Hello hello)
        {
            return new PeerControl.Listener()
            {
                @Override
                public PeerControl.CheckpointAnswer onCheckpointPrepare(
                    final long deadlineNanos, final long primaryEpoch)
                {
                    if (primaryEpoch != secondary.epoch())
                    {
                        return new PeerControl.CheckpointAnswer(-Errno.EINVAL, secondary.epoch(), "epoch mismatch: " +
                            "the primary is at " + primaryEpoch + ", the secondary at " + secondary.epoch());
                    }
                    final CheckpointReport report = checkpoint(Math.max(0, deadlineNanos - System.nanoTime()));
                    return new PeerControl.CheckpointAnswer(report.result(), report.epoch(), report.reason());
                }

                @Override
                public void onLost(final String reason)
                {
                    if (replica.onPeerLoss == PeerLossAction.FAILOVER)
                    {
                        out.printf("understudy: peer lost: %s; --on-peer-loss failover: failing over%n", reason);
                        out.flush();
                        Thread.ofVirtual().name("peer-loss-failover").start(SecondaryCommand.this::failoverOnPeerLoss);
                        return;
                    }
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
        public void onLink(final PeerControl link, final Hello hello)
        {
            synchronized (state)
            {
                // Durable before the first forwarded write: a restart must know which pair S belongs to.
                state.generation(hello.generationId());
                if (secondary.stage() == ReplicationStage.RUNNING)
                {
                    state.write(ReplicaStateFile.Phase.RUNNING, secondary.epoch(), 0);
                }
            }
            peer.link(link);
            out.printf("understudy: primary linked from %s (generation %x, heartbeat %d ms, timeout %d ms)%n",
                link.peerName(), hello.generationId(), hello.heartbeatIntervalMillis(), hello.heartbeatTimeoutMillis());
            out.flush();
        }
    }
}
