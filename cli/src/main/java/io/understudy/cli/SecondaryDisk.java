package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
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
import org.agrona.CloseHelper;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * One disk of a secondary sidecar: its locks and state record, S with its overlays H and A, the
 * {@link ReplicationSecondary}, the forwarding sink its primary links to, and the SVM's export, with the status
 * and the control operations that act on it. A sidecar of several disks runs one of these per disk, each with its
 * own sink and control link, so one primary's link, one state record or one failover never reaches another disk;
 * the command around them owns what is sidecar-wide (I/O engine, counters file, control socket, duty thread).
 * <p>
 * Life cycle, driven by the command: the constructor locks the files and opens the state record (refusing a
 * crashed run's S); {@link #open} opens S and the overlays; {@link #start} starts replication; {@link #serve}
 * opens the sink and the SVM's export; {@link #closeEndpoints}; {@link #endReplication} after the duty cycle
 * stopped; {@link #finalFlush} and {@link #markClean}; {@link #close} releases the rest, whatever step failed.
 */
final class SecondaryDisk implements SidecarDisk, AutoCloseable
{
    /**
     * What a disk is given: name, S, the SVM's socket, H, A, the state record, where its primary links to, and
     * the faults injected into its files (tests).
     *
     * @param where where a config file gave it ("FILE:LINE"), or null for flags.
     */
    record Spec(String name, String where, Path disk, Path socket, Path hidden, Path active, Path state,
        PeerUri listen, ListenAddress controlListen, List<InjectedFault> faults)
    {
    }

    private final Spec spec;
    private final ReplicaOptions replica;
    private final boolean resynced;
    /** The disk's name in a sidecar of several disks (counters, events, log lines), else null. */
    private final String label;
    private final PrintWriter out;
    private final int hiddenClusterSize;
    private final CowCopy cowCopy;
    private final PeerStatus peer = new PeerStatus();
    private final StatusWatch watch;
    private DiskLock diskLock;
    private DiskLock hiddenLock;
    private DiskLock activeLock;
    private ReplicaStateFile state;
    private BlockDevice device;
    private ReplicationSecondary secondary;
    /** Set once listening; volatile: status runs on control-socket threads. */
    private volatile SinkEndpoint sinkEndpoint;
    private NbdServer export;
    /** FLAG_FAILED_OVER once a failover committed; volatile: set on a control thread, read at exit. */
    private volatile int cleanFlags;
    /** Plain: the command's main thread alone closes. */
    private boolean closed;
    /** True if this run created the state record: one never written is removed on close, see {@link #close}. */
    private boolean stateCreated;

    /** Locks S (unless shared: the primary owns it), H and A, and opens the state record. */
    SecondaryDisk(
        final Spec spec, final ReplicaOptions replica, final int hiddenClusterSize, final CowCopy cowCopy,
        final boolean resynced, final boolean labelled, final ControlEvents events, final PrintWriter out)
    {
        this.spec = spec;
        this.replica = replica;
        this.hiddenClusterSize = hiddenClusterSize;
        this.cowCopy = cowCopy;
        this.resynced = resynced;
        this.label = labelled ? spec.name() : null;
        this.out = out;
        this.watch = new StatusWatch(events, this::status, label);
        try
        {
            // In shared mode the primary owns the disk (and locks it); this side only reads S until a failover.
            diskLock = replica.shared ? null : DiskLock.acquire(spec.disk(), true);
            hiddenLock = DiskLock.acquire(touch(spec.hidden()), true);
            activeLock = DiskLock.acquire(touch(spec.active()), true);
            state = openState();
        }
        catch (final RuntimeException e)
        {
            close();
            throw e;
        }
    }

    @Override
    public String name()
    {
        return spec.name();
    }

    StatusWatch watch()
    {
        return watch;
    }

    /** Opens S, empties H and A and creates the engine. */
    void open(final IoEngine engine, final DaemonCounters counters)
    {
        final FileOptions options = FileOptions.readWrite();
        device = openDisk(engine, options);
        final FileOverlayStorage hiddenStorage = overlay(engine, spec.hidden(), device.size(), options);
        final FileOverlayStorage activeStorage;
        try
        {
            activeStorage = overlay(engine, spec.active(), device.size(), options);
        }
        catch (final RuntimeException e)
        {
            hiddenStorage.close();
            throw e;
        }
        secondary = new ReplicationSecondary(device, hiddenStorage, activeStorage, (int)replica.clusterSize,
            hiddenClusterSize, replica.shared, SecondaryCommand.QUEUE_DEPTH, cowCopy);
        counters.secondary(secondary, peer, label);
    }

    void start()
    {
        final ControlResult started = secondary.start(ReplicationMode.SECONDARY);
        if (!started.ok())
        {
            throw new UserException("start failed: " + started.reason());
        }
        state.write(ReplicaStateFile.Phase.RUNNING, secondary.epoch(), 0);
    }

    /** Listens for the primary, then serves the SVM's view. */
    void serve(final DaemonCounters counters)
    {
        sinkEndpoint = listenForPrimary(counters);
        export = Exports.unix(secondary.view(), SecondaryCommand.VIEW_EXPORT, spec.socket(), out, counters, label);
    }

    /** @return the ready line's part about this disk: its sink and the SVM's export. */
    @Override
    public String describe()
    {
        return sinkEndpoint.describe() + ", SVM export nbd+unix:///?socket=" + spec.socket();
    }

    @Override
    public long size()
    {
        return secondary.view().size();
    }

    /** Tells the primary the secondary is leaving. */
    void goodbye()
    {
        peer.goodbye(false, "the secondary is shutting down");
    }

    /** Closes the SVM's export, then the sink: no I/O from either side after this. */
    void closeEndpoints()
    {
        final NbdServer view = export;
        final SinkEndpoint sink = sinkEndpoint;
        export = null;
        CloseHelper.closeAll(view, sink);
    }

    /** Closes the engine; the duty cycle has stopped. */
    void endReplication()
    {
        CloseHelper.close(secondary);
    }

    void finalFlush() throws InterruptedException
    {
        Flush.finalFlush(device, spec.disk().toString(), replica.ioTimeoutMillis);
    }

    /** Releases S, the state record and the locks; a second call does nothing. */
    @Override
    public void close()
    {
        if (!closed)
        {
            closed = true;
            try
            {
                CloseHelper.closeAll(device, state);
                removeUnwrittenState();
            }
            finally
            {
                CloseHelper.closeAll(activeLock, hiddenLock, diskLock);
            }
        }
    }

    /**
     * A record this run created but never wrote (the sidecar stopped before this disk started, e.g. another disk
     * failed) is empty, and an empty record refuses every later start; S was never touched, so it goes.
     */
    private void removeUnwrittenState()
    {
        try
        {
            if (stateCreated && Files.size(spec.state()) == 0)
            {
                Files.delete(spec.state());
            }
        }
        catch (final IOException e)
        {
            throw new UserException(spec.state() + ": cannot remove the unused state record (" + e.getMessage() +
                ")", e);
        }
    }

    @Override
    public int doWork()
    {
        return secondary.doWork();
    }

    @Override
    public ReplicationStage stage()
    {
        return secondary.stage();
    }

    @Override
    public long epoch()
    {
        return secondary.epoch();
    }

    @Override
    public ObjectNode checkpoint(final long timeoutNanos) throws ControlException
    {
        if (peer.isUp())
        {
            throw new ControlException(ControlException.COORDINATED_BY_PRIMARY, "an Understudy primary is " +
                "linked (" + peer.link().peerName() + "): run checkpoint on the primary");
        }
        return StatusJson.checkpoint(checkpointDisk(timeoutNanos));
    }

    @Override
    public ObjectNode failover(final long timeoutNanos) throws ControlException
    {
        return watch.failover(() -> commitFailover(timeoutNanos));
    }

    @Override
    public ObjectNode stop(final long timeoutNanos) throws ControlException
    {
        final ControlResult result = secondary.shutdown(timeoutNanos);
        peer.goodbye(false, "replication stopped on the secondary");
        return StatusJson.control("stop", result);
    }

    @Override
    public ObjectNode status()
    {
        final ObjectNode status = StatusJson.status("secondary", replica.shared, secondary, secondary.latchedError(),
            peer);
        status.put("cluster-size", replica.clusterSize);
        status.put("hidden-cluster-size", hiddenClusterSize);
        status.put("cow-copy", cowCopy.name().toLowerCase(Locale.ROOT));
        final SinkEndpoint current = sinkEndpoint;
        if (current != null)
        {
            current.toJson(status.putObject("transport"));
        }
        status.putObject("commit").put("done-bytes", secondary.committedBytes())
            .put("total-bytes", secondary.commitTotalBytes());
        return status;
    }

    /** "disk NAME: " before a log line of one disk of several, else nothing: a lone disk's lines are unchanged. */
    private String tag()
    {
        return label == null ? "" : "disk " + label + ": ";
    }

    private SinkEndpoint listenForPrimary(final DaemonCounters counters)
    {
        return switch (spec.listen())
        {
            case NbdUri nbd -> NbdSinkEndpoint.listen(nbd, spec.controlListen(), secondary.sink(),
                replica.heartbeatTimeoutMillis, secondary::epoch, new Acceptor(), counters, label);
            case AeronUri aeron -> AeronSinkEndpoint.listen(aeron, replica.aeronDir, secondary.sink(),
                replica.heartbeatTimeoutMillis, secondary::epoch, new Acceptor());
        };
    }

    /** Failover: forwarding refused first (the engine does it), the peer told, then the commit awaited. */
    private ObjectNode commitFailover(final long timeoutNanos) throws ControlException
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
            out.printf("understudy: %sfailed over at epoch %d: S is the survivor's disk, generation now %x%n",
                tag(), secondary.epoch(), state.generation());
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
            final ObjectNode reply = failover(timeoutNanos);
            out.printf("understudy: %sautomatic failover done: %s%n", tag(), reply);
        }
        catch (final ControlException | UserException e)
        {
            out.printf("understudy: %sautomatic failover failed: %s%n", tag(), e.getMessage());
        }
        out.flush();
    }

    /**
     * Synced before and after the engine's checkpoint: a crash in between leaves CHECKPOINTING (AX-13), whose S
     * nobody may take for either epoch's disk.
     */
    private CheckpointReport checkpointDisk(final long timeoutNanos)
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
    void markClean()
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
        final ReplicaStateFile.State previous = ReplicaStateFile.read(spec.state());
        if (previous != null && previous.phase() != ReplicaStateFile.Phase.CLEAN && !resynced)
        {
            throw new UserException(spec.state() + ": the previous run stopped while " + previous.phase() +
                " (epoch " + previous.epoch() + "): S may hold primary writes of an unfinished epoch; resynchronise " +
                "S from the primary, then start with --resynced");
        }
        if (previous != null && (previous.flags() & ReplicaStateFile.FLAG_FAILED_OVER) != 0 && !resynced)
        {
            throw new UserException("split-brain guard (rule SB-SURVIVOR): " + spec.disk() + " is the survivor's " +
                "disk of a failover at epoch " + previous.epoch() + " (generation " +
                Long.toHexString(previous.generation()) + "); it may hold writes the old primary never saw. Run " +
                "it as a primary, or resynchronise it from the current primary and start with --resynced");
        }
        stateCreated = previous == null && !Files.exists(spec.state());
        return ReplicaStateFile.open(spec.state(), ThreadLocalRandom.current().nextLong());
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

    private BlockDevice openDisk(final IoEngine engine, final FileOptions options)
    {
        try
        {
            return InjectedFault.wrap(spec.faults(), "disk", engine.open(spec.disk(), options));
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
            final String target = path.equals(spec.hidden()) ? "hidden" : "active";
            return FileOverlayStorage.create(engine, path, size, options,
                file -> InjectedFault.wrap(spec.faults(), target, file));
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
                    final CheckpointReport report = checkpointDisk(Math.max(0, deadlineNanos - System.nanoTime()));
                    return new PeerControl.CheckpointAnswer(report.result(), report.epoch(), report.reason());
                }

                @Override
                public void onLost(final String reason)
                {
                    if (replica.onPeerLoss == PeerLossAction.FAILOVER)
                    {
                        out.printf("understudy: %speer lost: %s; --on-peer-loss failover: failing over%n", tag(),
                            reason);
                        out.flush();
                        Thread.ofVirtual().name("peer-loss-failover").start(SecondaryDisk.this::failoverOnPeerLoss);
                        return;
                    }
                    out.printf("understudy: %speer lost: %s (failover is an operator action: understudy failover " +
                        "--control %s%s)%n", tag(), reason, replica.control, label == null ? "" : " --disk " + label);
                    out.flush();
                }

                @Override
                public void onGoodbye(final boolean failover, final String reason)
                {
                    out.printf("understudy: %sthe primary ended the control link%s: %s%n", tag(),
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
            out.printf("understudy: %sprimary linked from %s (generation %x, heartbeat %d ms, timeout %d ms)%n",
                tag(), link.peerName(), hello.generationId(), hello.heartbeatIntervalMillis(),
                hello.heartbeatTimeoutMillis());
            out.flush();
        }
    }
}
