package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.CounterType;
import io.understudy.cli.counters.CountersFile;
import io.understudy.cli.counters.DaemonRole;
import io.understudy.cli.counters.ErrorLogFile;
import io.understudy.engine.device.Errno;
import io.understudy.engine.overlay.OverlayDevice;
import io.understudy.engine.replication.CheckpointHistory;
import io.understudy.engine.replication.ErrorLatch;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationSecondary;
import io.understudy.engine.replication.ReplicationState;
import io.understudy.engine.link.PeerControl;
import io.understudy.nbd.protocol.NbdProtocol;
import io.understudy.nbd.server.NbdCounters;
import io.understudy.nbd.server.NbdServer;
import org.agrona.ErrorHandler;
import org.agrona.concurrent.EpochClock;
import org.agrona.concurrent.SystemEpochClock;
import org.agrona.concurrent.status.AtomicCounter;
import org.agrona.concurrent.status.CountersManager;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;

/**
 * A daemon's observability wiring: its {@link CountersFile} and {@link ErrorLogFile}, the
 * {@link DaemonErrorHandler} every error goes to, and the sampler that copies the engine's and the NBD servers'
 * own counters into the mapped file.
 * <p>
 * <b>Sampling</b> runs on the daemon's duty cycle ({@link #dutyCycle} wraps it): every cycle refreshes the
 * heartbeat (so {@code understudy stat} can tell a hung daemon), every {@value #SAMPLE_INTERVAL_MS} ms the
 * figures are copied. The I/O path never sees any of this: the engine keeps plain atomics, the sampler reads
 * them. Sampling allocates nothing unless it finds a new error to report.
 * <p>
 * <b>Threads.</b> Sources are registered from the daemon's main thread (allocation in the file is not
 * thread-safe, so registration is synchronized) and published to the duty thread through a volatile array.
 * Only the duty thread writes the sampled values, with release stores (each value is whole to a reader; no
 * order between counters is promised); the errors counter is an atomic add from any thread.
 */
final class DaemonCounters implements AutoCloseable
{
    /** How often figures are copied; the heartbeat is refreshed every cycle. */
    static final long SAMPLE_INTERVAL_MS = 100;

    private final CountersFile file;
    private final ErrorLogFile errorLog;
    private final CountersManager manager;
    private final EpochClock clock = SystemEpochClock.INSTANCE;
    private final DaemonErrorHandler errors;
    private final Thread.UncaughtExceptionHandler previousUncaught;
    private final DaemonRole role;
    private MetricsEndpoint metrics;
    private volatile Runnable[] samplers = new Runnable[0];
    /** Duty thread only. */
    private long nextSampleMs;

    private DaemonCounters(final CountersFile file, final ErrorLogFile errorLog, final DaemonRole role)
    {
        this.file = file;
        this.role = role;
        this.errorLog = errorLog;
        this.manager = file.manager();
        this.errors = new DaemonErrorHandler(errorLog.newWriter(clock), counter(CounterType.ERRORS, null));
        this.previousUncaught = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((thread, throwable) -> errors.onError(throwable));
    }

    /**
     * Creates the daemon's counters file and error log.
     *
     * @throws UserException if either cannot be created (or a live daemon uses it).
     */
    static DaemonCounters open(final Path counters, final Path errorLog, final DaemonRole role, final boolean shared)
    {
        final long now = System.currentTimeMillis();
        final CountersFile countersFile;
        try
        {
            countersFile = CountersFile.create(counters, role, shared, now);
        }
        catch (final RuntimeException e)
        {
            throw new UserException("--counters " + e.getMessage(), e);
        }
        try
        {
            return new DaemonCounters(countersFile, ErrorLogFile.create(errorLog, role,
                ErrorLogFile.DEFAULT_CAPACITY, now), role);
        }
        catch (final RuntimeException e)
        {
            countersFile.close();
            throw new UserException("--error-log " + e.getMessage(), e);
        }
    }

    /**
     * Starts the Prometheus endpoint, closed with this.
     *
     * @throws UserException for a non-loopback address or a failed bind.
     */
    MetricsEndpoint serveMetrics(final ListenAddress address)
    {
        metrics = MetricsEndpoint.start(address, file.reader(), role);
        return metrics;
    }

    /** @return the handler every error of the daemon goes to. */
    ErrorHandler errorHandler()
    {
        return errors;
    }

    /**
     * @return {@code work} followed by the sampler, with whatever {@code work} throws counted and logged (the
     * cycle goes on, as Agrona's agent runner does).
     */
    IntSupplier dutyCycle(final IntSupplier work)
    {
        return () ->
        {
            int done = 0;
            try
            {
                done = work.getAsInt();
            }
            catch (final Throwable t)
            {
                errors.onError(t);
            }
            return done + doWork();
        };
    }

    /** Heartbeat every call, figures every {@link #SAMPLE_INTERVAL_MS}; returns 0 (sampling is not progress). */
    int doWork()
    {
        final long now = clock.time();
        if (now - nextSampleMs >= 0)
        {
            nextSampleMs = now + SAMPLE_INTERVAL_MS;
            sample();
        }
        file.heartbeat(now);
        return 0;
    }

    /** Copies every source's figures now. */
    void sample()
    {
        for (final Runnable sampler : samplers)
        {
            sampler.run();
        }
    }

    /**
     * Publishes the primary's figures: state, epoch, checkpoints, forwarding, dirty clusters, COW, peer link.
     *
     * @param disk the disk's name in a sidecar of several disks (labels end in {@code @disk}), else null.
     */
    synchronized void primary(final ReplicationPrimary primary, final PeerStatus peer, final String disk)
    {
        add(new PrimarySampler(primary, new ReplicationSampler(peer, disk), disk));
    }

    /**
     * Publishes the secondary's figures: state, epoch, checkpoints, overlays, failover commit, peer link.
     *
     * @param disk the disk's name in a sidecar of several disks (labels end in {@code @disk}), else null.
     */
    synchronized void secondary(final ReplicationSecondary secondary, final PeerStatus peer, final String disk)
    {
        add(new SecondarySampler(secondary, new ReplicationSampler(peer, disk), disk));
    }

    /** Publishes an NBD server's figures under its export's name; its connection errors come here. */
    synchronized void nbd(final NbdServer server, final String export)
    {
        nbd(server, export, null);
    }

    /** As {@link #nbd(NbdServer, String)}, for the export of one disk of a sidecar of several ({@code disk}). */
    synchronized void nbd(final NbdServer server, final String export, final String disk)
    {
        add(new NbdSampler(server.counters(), export, disk));
    }

    /** Adds every counter, by label, to a {@code status} reply (figures as of the last sample). */
    void toJson(final ObjectNode node)
    {
        CountersJson.put(file.reader(), node.putObject("counters"));
    }

    /**
     * Stops the metrics endpoint and restores the uncaught-exception handler. The files stay on disk with the duty
     * cycle's last sample (no sample here: the engine and NBD servers are closed by now, their memory may be
     * freed). They are not unmapped: a straggling thread (a control client's status, an NBD connection's last
     * error) may still touch them, and unmapped memory would crash the JVM; the mappings go with the last
     * reference to them, or with the process.
     */
    @Override
    public void close()
    {
        if (metrics != null)
        {
            metrics.close();
        }
        Thread.setDefaultUncaughtExceptionHandler(previousUncaught);
    }

    private void add(final Runnable sampler)
    {
        sampler.run();
        final Runnable[] current = samplers;
        final Runnable[] next = Arrays.copyOf(current, current.length + 1);
        next[current.length] = sampler;
        // Volatile write publishes the sampler and its counters to the duty thread.
        samplers = next;
    }

    private AtomicCounter counter(final CounterType type, final String export)
    {
        return counter(type, export, null);
    }

    private AtomicCounter counter(final CounterType type, final String export, final String disk)
    {
        return manager.newCounter(CounterType.forDisk(export == null ? type.label() : type.label(export), disk),
            type.typeId());
    }

    /** State, epoch, checkpoint durations and the peer link, common to both roles. */
    private final class ReplicationSampler
    {
        private final PeerStatus peer;
        private final String disk;
        private final AtomicCounter state;
        private final AtomicCounter epoch;
        private final AtomicCounter checkpoints;
        private final AtomicCounter lastMicros;
        private final AtomicCounter p50Micros;
        private final AtomicCounter p99Micros;
        private final AtomicCounter peerLink;
        private ErrorLatch.LatchedError reportedError;
        private PeerControl reportedLostLink;

        ReplicationSampler(final PeerStatus peer, final String disk)
        {
            this.peer = peer;
            this.disk = disk;
            state = counter(CounterType.STATE, null, disk);
            epoch = counter(CounterType.EPOCH, null, disk);
            checkpoints = counter(CounterType.CHECKPOINTS, null, disk);
            lastMicros = counter(CounterType.CHECKPOINT_LAST_US, null, disk);
            p50Micros = counter(CounterType.CHECKPOINT_P50_US, null, disk);
            p99Micros = counter(CounterType.CHECKPOINT_P99_US, null, disk);
            peerLink = counter(CounterType.PEER_LINK, null, disk);
        }

        void sample(
            final ReplicationState replicationState, final long currentEpoch,
            final CheckpointHistory history, final ErrorLatch.LatchedError latched)
        {
            state.setRelease(replicationState.ordinal());
            epoch.setRelease(currentEpoch);
            checkpoints.setRelease(history.count());
            lastMicros.setRelease(TimeUnit.NANOSECONDS.toMicros(history.lastNanos()));
            p50Micros.setRelease(TimeUnit.NANOSECONDS.toMicros(history.p50Nanos()));
            p99Micros.setRelease(TimeUnit.NANOSECONDS.toMicros(history.p99Nanos()));
            peerLink.setRelease(CounterType.peerLinkCode(peer.label()));
            if (latched != null && latched != reportedError)
            {
                reportedError = latched;
                errors.onError(new ObservedFailure(prefix() + "replication error latched: " +
                    Errno.name(latched.errno()) + ": " + latched.reason()));
            }
            final PeerControl link = peer.link();
            if (link != null && link != reportedLostLink && link.state() == PeerControl.State.LOST)
            {
                reportedLostLink = link;
                errors.onError(new ObservedFailure(prefix() + "control link to " + link.peerName() + " lost: " +
                    link.reason()));
            }
        }

        private String prefix()
        {
            return disk == null ? "" : "disk " + disk + ": ";
        }
    }

    private final class PrimarySampler implements Runnable
    {
        private final ReplicationPrimary primary;
        private final ReplicationSampler common;
        private final AtomicCounter forwardedOps;
        private final AtomicCounter forwardedBytes;
        private final AtomicCounter forwardTimeouts;
        private final AtomicCounter unacknowledgedBytes;
        private final AtomicCounter dirtyClusters;
        private final AtomicCounter cowCopies;

        PrimarySampler(final ReplicationPrimary primary, final ReplicationSampler common, final String disk)
        {
            this.primary = primary;
            this.common = common;
            forwardedOps = counter(CounterType.FORWARDED_OPS, null, disk);
            forwardedBytes = counter(CounterType.FORWARDED_BYTES, null, disk);
            forwardTimeouts = counter(CounterType.FORWARD_TIMEOUTS, null, disk);
            unacknowledgedBytes = counter(CounterType.UNACKNOWLEDGED_BYTES, null, disk);
            dirtyClusters = counter(CounterType.DIRTY_CLUSTERS, null, disk);
            cowCopies = counter(CounterType.COW_COPIES, null, disk);
        }

        @Override
        public void run()
        {
            common.sample(primary.state(), primary.epoch(), primary.checkpoints(), primary.latchedError());
            forwardedOps.setRelease(primary.link().forwarded());
            forwardedBytes.setRelease(primary.link().forwardedBytes());
            forwardTimeouts.setRelease(primary.link().timeouts());
            unacknowledgedBytes.setRelease(primary.link().unacknowledgedBytes());
            dirtyClusters.setRelease(primary.dirtyBitmap().cardinality());
            cowCopies.setRelease(primary.cowCopies());
        }
    }

    private final class SecondarySampler implements Runnable
    {
        private final ReplicationSecondary secondary;
        private final ReplicationSampler common;
        private final AtomicCounter hiddenClusters;
        private final AtomicCounter activeClusters;
        private final AtomicCounter committedBytes;
        private final AtomicCounter commitTotalBytes;
        private final AtomicCounter cowCopies;
        private final AtomicCounter cowCopiesOffloaded;

        SecondarySampler(final ReplicationSecondary secondary, final ReplicationSampler common, final String disk)
        {
            this.secondary = secondary;
            this.common = common;
            hiddenClusters = counter(CounterType.HIDDEN_CLUSTERS, null, disk);
            activeClusters = counter(CounterType.ACTIVE_CLUSTERS, null, disk);
            committedBytes = counter(CounterType.COMMITTED_BYTES, null, disk);
            commitTotalBytes = counter(CounterType.COMMIT_TOTAL_BYTES, null, disk);
            cowCopies = counter(CounterType.COW_COPIES, null, disk);
            cowCopiesOffloaded = counter(CounterType.COW_COPIES_OFFLOADED, null, disk);
        }

        @Override
        public void run()
        {
            common.sample(secondary.state(), secondary.epoch(), secondary.checkpoints(), secondary.latchedError());
            hiddenClusters.setRelease(clusters(secondary.hidden()));
            activeClusters.setRelease(clusters(secondary.active()));
            committedBytes.setRelease(secondary.committedBytes());
            commitTotalBytes.setRelease(secondary.commitTotalBytes());
            cowCopies.setRelease(secondary.cowCopies());
            cowCopiesOffloaded.setRelease(secondary.offloadedCowCopies());
        }

        /** In the overlay's own clusters: H's may be smaller than A's (--hidden-cluster-size). */
        private static long clusters(final OverlayDevice overlay)
        {
            return overlay == null ? 0 : overlay.allocatedBytes() / overlay.clusterSize();
        }
    }

    private final class NbdSampler implements Runnable
    {
        private final NbdCounters source;
        private final AtomicCounter connections;
        private final AtomicCounter inFlight;
        private final AtomicCounter requests;
        private final AtomicCounter readBytes;
        private final AtomicCounter writeBytes;
        private final AtomicCounter errorReplies;

        NbdSampler(final NbdCounters source, final String export, final String disk)
        {
            this.source = source;
            this.connections = counter(CounterType.NBD_CONNECTIONS, export, disk);
            this.inFlight = counter(CounterType.NBD_IN_FLIGHT, export, disk);
            this.requests = counter(CounterType.NBD_REQUESTS, export, disk);
            this.readBytes = counter(CounterType.NBD_READ_BYTES, export, disk);
            this.writeBytes = counter(CounterType.NBD_WRITE_BYTES, export, disk);
            this.errorReplies = counter(CounterType.NBD_ERROR_REPLIES, export, disk);
        }

        @Override
        public void run()
        {
            connections.setRelease(source.connectionsActive());
            inFlight.setRelease(source.inFlight());
            long total = 0;
            for (int type = 0; type <= NbdProtocol.CMD_TYPES; type++)
            {
                total += source.requests(type);
            }
            requests.setRelease(total);
            readBytes.setRelease(source.bytes(NbdProtocol.CMD_READ));
            writeBytes.setRelease(source.bytes(NbdProtocol.CMD_WRITE));
            errorReplies.setRelease(source.errorReplies());
        }
    }
}
