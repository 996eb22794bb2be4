package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ErrorLatch;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationStage;
import io.understudy.nbd.server.NbdServer;
import org.agrona.CloseHelper;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * One disk of a primary sidecar: its lock, its device, its link to the secondary's disk, its
 * {@link ReplicationPrimary} and the guest's export, with the status and the control operations that act on it.
 * A sidecar of several disks runs one of these per disk, each with its own link, so a disk's peer, deadlines and
 * failures never reach another; the command around them owns what is sidecar-wide (I/O engine, counters file,
 * control socket, duty thread).
 * <p>
 * Life cycle, driven by the command: the constructor locks the disk; {@link #open} opens it and links to the peer;
 * {@link #start} starts replication; {@link #serve} opens the guest's export; {@link #endReplication} after the duty
 * cycle stopped; {@link #finalFlush}; {@link #close} releases the rest. A disk that failed half-way is closed
 * like any other: each step's resources are released by {@link #close} if they were taken.
 */
final class PrimaryDisk implements SidecarDisk, AutoCloseable
{
    /**
     * What a disk is given: its name, file, guest socket, peer and the faults injected into its file (tests).
     *
     * @param where where a config file gave it ("[disk NAME] at FILE:LINE"), or null for flags: errors say so.
     */
    record Spec(String name, String where, Path disk, Path socket, PeerUri peerUri, ListenAddress peerControl,
        List<InjectedFault> faults)
    {
    }

    private final Spec spec;
    private final ReplicaOptions replica;
    private final long connectTimeoutMillis;
    /** The disk's name in a sidecar of several disks (counters, events, log lines), else null. */
    private final String label;
    private final PrintWriter out;
    private final PeerStatus peer = new PeerStatus();
    private final StatusWatch watch;
    private DiskLock lock;
    /** Volatile: the link listener may run before the primary exists, on the link's thread. */
    private volatile ReplicationPrimary primary;
    /** Set once connected; volatile: status runs on control-socket threads. */
    private volatile PeerConnection connection;
    private BlockDevice device;
    private NbdServer export;
    /** Set once by the duty cycle when it saw forwarding stop; plain: only the duty thread reads and writes it. */
    private boolean forwardingLossAnnounced;

    /** Locks the disk against other writers. */
    PrimaryDisk(
        final Spec spec, final ReplicaOptions replica, final long connectTimeoutMillis, final boolean labelled,
        final ControlEvents events, final PrintWriter out)
    {
        this.spec = spec;
        this.replica = replica;
        this.connectTimeoutMillis = connectTimeoutMillis;
        this.label = labelled ? spec.name() : null;
        this.out = out;
        this.watch = new StatusWatch(events, this::status, label);
        this.lock = DiskLock.acquire(spec.disk(), true);
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

    /** Opens the disk, links to the peer (retrying up to the connect timeout) and creates the engine. */
    void open(final IoEngine engine, final DaemonCounters counters)
    {
        try
        {
            device = InjectedFault.wrap(spec.faults(), "disk", engine.open(spec.disk(), FileOptions.readWrite()));
        }
        catch (final IOException e)
        {
            throw new UserException(e.getMessage(), e);
        }
        connection = connectPeer(device.size());
        primary = new ReplicationPrimary(device, connection.forwarding(), replica.shared, (int)replica.clusterSize,
            TimeUnit.MILLISECONDS.toNanos(replica.ioTimeoutMillis), SecondaryCommand.QUEUE_DEPTH);
        counters.primary(primary, peer, label);
    }

    /** Adopts the control link and starts replication. */
    void start()
    {
        adoptControl();
        final ControlResult started = primary.start(ReplicationMode.PRIMARY);
        if (!started.ok())
        {
            throw new UserException("start failed: " + started.reason());
        }
    }

    /** Opens the guest's export. */
    void serve(final DaemonCounters counters)
    {
        export = Exports.unix(primary, PrimaryCommand.GUEST_EXPORT, spec.socket(), out, counters, label);
    }

    /** @return the ready line's part about this disk: its export and its link. */
    @Override
    public String describe()
    {
        return "guest export nbd+unix:///?socket=" + spec.socket() + ", " + connection.describe();
    }

    @Override
    public long size()
    {
        return primary.size();
    }

    /** Closes the guest's export: no guest I/O after this. */
    void closeExport()
    {
        CloseHelper.close(export);
        export = null;
    }

    /** Closes the engine (the duty cycle has stopped) and says goodbye to the peer. */
    void endReplication()
    {
        try
        {
            CloseHelper.close(primary);
        }
        finally
        {
            peer.goodbye(false, "the primary is shutting down");
        }
    }

    void finalFlush() throws InterruptedException
    {
        Flush.finalFlush(device, spec.disk().toString(), replica.ioTimeoutMillis);
    }

    /** Releases whatever {@link #open} took, and the lock; a second call does nothing. */
    @Override
    public void close()
    {
        final PeerConnection link = connection;
        final BlockDevice disk = device;
        final DiskLock held = lock;
        final NbdServer guest = export;
        export = null;
        device = null;
        lock = null;
        // The connection stays readable by status; closing it twice is what a second call must avoid.
        connection = null;
        CloseHelper.closeAll(guest, link, disk, held);
    }

    /**
     * The replication duty cycle, plus one check: forwarding that stopped while the control link is still up
     * (a forwarded request failed or missed its deadline) is announced to the secondary with GOODBYE, so its
     * status stops claiming a live pair. Off the duty thread: a hung peer must not stall the deadlines.
     */
    @Override
    public int doWork()
    {
        final int work = primary.doWork();
        if (!forwardingLossAnnounced && !primary.link().isForwarding())
        {
            forwardingLossAnnounced = true;
            if (peer.isUp() && primary.stage() == ReplicationStage.RUNNING)
            {
                final ErrorLatch.LatchedError error = primary.latchedError();
                final String reason = "forwarding stopped: " + (error != null ? error.reason() : "dropped");
                out.printf("understudy: %s%s; the pair is degraded, the dirty bitmap is kept%n", tag(), reason);
                out.flush();
                Thread.ofVirtual().start(() -> peer.goodbye(true, reason));
            }
            return work + 1;
        }
        return work;
    }

    @Override
    public ReplicationStage stage()
    {
        return primary.stage();
    }

    @Override
    public long epoch()
    {
        return primary.epoch();
    }

    @Override
    public ObjectNode checkpoint(final long timeoutNanos) throws ControlException
    {
        final PeerControl link = peer.link();
        return StatusJson.checkpoint(watch.checkpoint(() -> link == null ? primary.checkpoint(timeoutNanos) :
            primary.checkpoint(timeoutNanos, deadline -> link.checkpointPeer(deadline, primary.epoch()).result())));
    }

    @Override
    public ObjectNode failover(final long timeoutNanos) throws ControlException
    {
        return watch.failover(() ->
        {
            final ControlResult result = primary.stop(true, timeoutNanos);
            peer.goodbye(true, "the primary dropped its secondary");
            return StatusJson.control("failover", result);
        });
    }

    @Override
    public ObjectNode stop(final long timeoutNanos) throws ControlException
    {
        peer.goodbye(false, "replication stopped on the primary");
        return StatusJson.control("stop", primary.stop(false, timeoutNanos));
    }

    @Override
    public ObjectNode status()
    {
        final ObjectNode status = StatusJson.status("primary", replica.shared, primary, primary.latchedError(), peer);
        status.put("cluster-size", primary.clusterSize())
            .put("dirty-clusters", primary.dirtyBitmap().cardinality())
            .put("forwarded", primary.link().forwarded())
            .put("forward-timeouts", primary.link().timeouts())
            .put("forwarding", primary.link().isForwarding());
        final PeerConnection current = connection;
        if (current != null)
        {
            current.toJson(status.putObject("transport"));
        }
        return status;
    }

    /** "disk NAME: " before a log line of one disk of several, else nothing: a lone disk's lines are unchanged. */
    private String tag()
    {
        return label == null ? "" : "disk " + label + ": ";
    }

    /** The hello carries the epoch the primary starts at; heartbeats read the live epoch once it runs. */
    private PeerConnection connectPeer(final long diskSize)
    {
        final Hello hello = new Hello(diskSize, (int)replica.clusterSize, replica.shared,
            ThreadLocalRandom.current().nextLong(), 0, replica.heartbeatMillis, replica.heartbeatTimeoutMillis);
        final LongSupplier epoch = () ->
        {
            final ReplicationPrimary current = primary;
            return current == null ? 0 : current.epoch();
        };
        return switch (spec.peerUri())
        {
            case NbdUri nbd -> NbdPeerConnection.connect(nbd, spec.peerControl(), hello, connectTimeoutMillis, epoch,
                new LinkListener());
            case AeronUri aeron -> AeronPeerConnection.connect(aeron, replica.aeronDir, hello, connectTimeoutMillis,
                epoch, new LinkListener());
        };
    }

    /** A link lost before the primary existed is reported now: the listener had nobody to tell. */
    private void adoptControl()
    {
        final PeerControl control = connection.control();
        if (control == null)
        {
            peer.foreign(connection.describe());
        }
        else
        {
            peer.link(control);
            if (control.state() != PeerControl.State.UP)
            {
                primary.link().fail(-Errno.ETIMEDOUT, "control link: " + control.reason());
            }
        }
        out.printf("understudy: %s%s%n", tag(), connection.describe());
        out.flush();
    }

    /** The secondary's silence or goodbye degrades the pair at once: the latch says why, the bitmap grows. */
    private final class LinkListener implements PeerControl.Listener
    {
        @Override
        public PeerControl.CheckpointAnswer onCheckpointPrepare(final long deadlineNanos, final long primaryEpoch)
        {
            return new PeerControl.CheckpointAnswer(-Errno.EINVAL, primary.epoch(),
                "the primary coordinates checkpoints; it does not take them from its peer");
        }

        @Override
        public void onLost(final String reason)
        {
            final ReplicationPrimary current = primary;
            if (current == null)
            {
                return;
            }
            current.link().fail(-Errno.ETIMEDOUT, "control link: " + reason);
            if (replica.onPeerLoss == PeerLossAction.FAILOVER)
            {
                out.printf("understudy: %speer lost: %s; --on-peer-loss failover: dropping the secondary, serving " +
                    "alone, the dirty bitmap is kept%n", tag(), reason);
                out.flush();
                Thread.ofVirtual().name("peer-loss-failover").start(() ->
                {
                    final ControlResult result = current.stop(true,
                        TimeUnit.MILLISECONDS.toNanos(replica.ioTimeoutMillis));
                    out.printf("understudy: %sautomatic failover %s (state %s)%n", tag(), result.ok() ? "done" :
                        "failed: " + result.reason(), current.state().label());
                    out.flush();
                });
                return;
            }
            out.printf("understudy: %speer lost: %s; the pair is degraded, the dirty bitmap is kept%n", tag(), reason);
            out.flush();
        }

        @Override
        public void onGoodbye(final boolean failover, final String reason)
        {
            final ReplicationPrimary current = primary;
            if (current == null)
            {
                return;
            }
            current.link().fail(-Errno.ESHUTDOWN, "the secondary ended replication: " + reason);
            out.printf("understudy: %sthe secondary ended the control link%s: %s; the pair is degraded%n", tag(),
                failover ? " (it took over)" : "", reason);
            out.flush();
        }
    }
}
