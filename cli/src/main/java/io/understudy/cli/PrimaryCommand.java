package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ErrorLatch;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationStage;
import io.understudy.nbd.client.NbdClientDevice;
import io.understudy.nbd.control.ControlLink;
import io.understudy.nbd.control.ControlRefusedException;
import io.understudy.nbd.control.Hello;
import io.understudy.nbd.server.NbdServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * {@code understudy primary}: the primary sidecar. Serves the guest's disk on {@code --socket}, forwards every
 * write to the peer's NBD sink and links to an Understudy secondary's control link (checkpoint coordination,
 * heartbeats); a peer without a control link is a plain NBD server whose checkpoints an orchestrator runs.
 */
@Command(
    name = "primary",
    mixinStandardHelpOptions = true,
    description = {
        "Run the primary sidecar: the guest's disk is served on --socket, writes are forwarded to --peer",
        "(nbd://HOST:PORT/EXPORT; the scheme picks the transport), the secondary's control link is reached at",
        "--peer-control (default: the peer's host and port + 1; if nobody answers there the peer is treated",
        "as a plain NBD server). Runs until SIGINT or SIGTERM, then drains, flushes and exits 0."})
final class PrimaryCommand implements Callable<Integer>
{
    static final String GUEST_EXPORT = "pvm";

    @Mixin
    ReplicaOptions replica;

    @Mixin
    CountersOptions countersOptions;

    @Option(names = "--peer", required = true, paramLabel = "nbd://HOST:PORT/EXPORT",
        converter = NbdUri.Converter.class, description = "The secondary's forwarding sink.")
    NbdUri peerUri;

    @Option(names = "--peer-control", paramLabel = "HOST:PORT", converter = ListenAddress.Converter.class,
        description = "The secondary's control link (default: --peer's host, port + 1).")
    ListenAddress peerControl;

    @Option(names = "--connect-timeout-ms", paramLabel = "MS", defaultValue = "10000",
        description = "How long to retry reaching the peer at start (default: ${DEFAULT-VALUE}).")
    long connectTimeoutMillis;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private final PeerStatus peer = new PeerStatus();
    private ReplicationPrimary primary;
    private DaemonCounters counters;
    private PrintWriter out;
    /** Set once by the duty cycle when it saw forwarding stop; plain: only the duty thread reads and writes it. */
    private boolean forwardingLossAnnounced;

    @Override
    public Integer call() throws Exception
    {
        out = spec.commandLine().getOut();
        validate();
        final ShutdownSignal shutdown = new ShutdownSignal();
        try (DiskLock _ = DiskLock.acquire(replica.disk, true);
            DaemonCounters _ = counters = countersOptions.open(DaemonRole.PRIMARY, replica.shared, replica.control,
                out);
            IoEngine engine = IoEngines.create(replica.ioMode);
            BlockDevice disk = open(engine);
            NbdClientDevice sink = connectSink())
        {
            if (sink.size() != disk.size())
            {
                throw new UserException("the peer's export has " + sink.size() + " bytes, " + replica.disk + " " +
                    disk.size() + ": they must be equal");
            }
            primary = new ReplicationPrimary(disk, sink, replica.shared, (int)replica.clusterSize,
                TimeUnit.MILLISECONDS.toNanos(replica.ioTimeoutMillis), SecondaryCommand.QUEUE_DEPTH);
            counters.primary(primary, peer);
            try (ReplicationPrimary _ = primary;
                DutyCycle _ = new DutyCycle("primary-duty", counters.dutyCycle(this::dutyCycle)))
            {
                linkToSecondary();
                final ControlResult started = primary.start(ReplicationMode.PRIMARY);
                if (!started.ok())
                {
                    throw new UserException("start failed: " + started.reason());
                }
                serve(shutdown);
            }
            finally
            {
                peer.goodbye(false, "the primary is shutting down");
            }
            Flush.finalFlush(disk, replica.disk.toString(), replica.ioTimeoutMillis);
        }
        out.println("understudy: stopped cleanly");
        return 0;
    }

    private void validate()
    {
        replica.validate();
        InjectedFault.validate(replica.faults, Set.of("disk"));
        if (connectTimeoutMillis <= 0)
        {
            throw new UserException("--connect-timeout-ms must be positive");
        }
        if (peerUri.port() == 0)
        {
            throw new UserException("--peer needs the peer's port: " + peerUri);
        }
        if (peerControl == null)
        {
            peerControl = new ListenAddress(peerUri.host(), peerUri.port() + 1);
        }
    }

    private void serve(final ShutdownSignal shutdown) throws InterruptedException
    {
        try (NbdServer _ = Exports.unix(primary, GUEST_EXPORT, replica.socket, out, counters);
            ControlServer control = startControl())
        {
            out.printf("understudy: primary ready (%s, %d bytes, cluster %d): guest export nbd+unix:///?socket=%s, " +
                "forwarding to %s, control link %s, control socket %s%n", replica.shared ? "shared" : "non-shared",
                primary.size(), replica.clusterSize, replica.socket, peerUri,
                peer.link() != null ? peer.link().peerName() : "none (plain NBD peer)", control.path());
            out.flush();
            final String signal = shutdown.await();
            out.printf("understudy: %s received: draining, flushing%n", signal);
            out.flush();
        }
    }

    private NbdClientDevice connectSink()
    {
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(connectTimeoutMillis);
        final InetSocketAddress address = new InetSocketAddress(peerUri.host(), peerUri.port());
        while (true)
        {
            try
            {
                return NbdClientDevice.connect(address, peerUri.export());
            }
            catch (final IOException e)
            {
                if (!(e.getCause() instanceof ConnectException) || System.nanoTime() - deadline >= 0)
                {
                    throw new UserException("cannot reach the peer " + peerUri + ": " + e.getMessage(), e);
                }
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
            }
        }
    }

    /** A refusal is fatal (a mismatched pair must not replicate); nobody answering means a foreign peer. */
    private void linkToSecondary()
    {
        final Hello hello = new Hello(primary.size(), primary.clusterSize(), replica.shared,
            ThreadLocalRandom.current().nextLong(), primary.epoch(), replica.heartbeatMillis,
            replica.heartbeatTimeoutMillis);
        final InetSocketAddress address = new InetSocketAddress(peerControl.host(), peerControl.port());
        try
        {
            peer.link(ControlLink.connect(address, hello, replica.heartbeatTimeoutMillis, primary::epoch,
                new LinkListener()));
            out.printf("understudy: control link up to %s (heartbeat %d ms, timeout %d ms)%n", address,
                replica.heartbeatMillis, replica.heartbeatTimeoutMillis);
        }
        catch (final ControlRefusedException e)
        {
            throw new UserException(e.getMessage(), e);
        }
        catch (final ConnectException e)
        {
            peer.foreign("no control link answers at " + peerControl.host() + ":" + peerControl.port());
            out.printf("understudy: no control link answers at %s: the peer is a plain NBD server; checkpoint " +
                "drains and flushes the forwarded writes, the orchestrator checkpoints the peer%n", address);
        }
        catch (final IOException e)
        {
            throw new UserException("control link " + address + ": " + e.getMessage(), e);
        }
        out.flush();
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
                final ControlLink link = peer.link();
                yield StatusJson.checkpoint(link == null ? primary.checkpoint(timeoutNanos) : primary.checkpoint(
                    timeoutNanos, deadline -> link.checkpointPeer(deadline, primary.epoch()).result()));
            }
            case "failover" -> failover(timeoutNanos);
            case "stop" ->
            {
                if (arguments.path("failover").asBoolean(false))
                {
                    yield failover(timeoutNanos);
                }
                peer.goodbye(false, "replication stopped on the primary");
                yield StatusJson.control("stop", primary.stop(false, timeoutNanos));
            }
            default -> throw new ControlException(ControlException.COMMAND_NOT_FOUND, "unknown command '" + command +
                "' (the primary knows status, checkpoint, failover, stop)");
        };
    }

    /**
     * The replication duty cycle, plus one check: forwarding that stopped while the control link is still up
     * (a forwarded request failed or missed its deadline) is announced to the secondary with GOODBYE, so its
     * status stops claiming a live pair. Off the duty thread: a hung peer must not stall the deadlines.
     */
    private int dutyCycle()
    {
        final int work = primary.doWork();
        if (!forwardingLossAnnounced && !primary.link().isForwarding())
        {
            forwardingLossAnnounced = true;
            if (peer.isUp() && primary.stage() == ReplicationStage.RUNNING)
            {
                final ErrorLatch.LatchedError error = primary.latchedError();
                final String reason = "forwarding stopped: " + (error != null ? error.reason() : "dropped");
                out.printf("understudy: %s; the pair is degraded, the dirty bitmap is kept%n", reason);
                out.flush();
                Thread.ofVirtual().start(() -> peer.goodbye(true, reason));
            }
            return work + 1;
        }
        return work;
    }

    private ObjectNode failover(final long timeoutNanos) throws ControlException
    {
        final ControlResult result = primary.stop(true, timeoutNanos);
        peer.goodbye(true, "the primary dropped its secondary");
        return StatusJson.control("failover", result);
    }

    private ObjectNode status()
    {
        final ObjectNode status = StatusJson.status("primary", replica.shared, primary, primary.latchedError(), peer);
        status.put("cluster-size", primary.clusterSize())
            .put("dirty-clusters", primary.dirtyBitmap().cardinality())
            .put("forwarded", primary.link().forwarded())
            .put("forward-timeouts", primary.link().timeouts())
            .put("forwarding", primary.link().isForwarding());
        counters.toJson(status);
        return status;
    }

    private BlockDevice open(final IoEngine engine)
    {
        try
        {
            return InjectedFault.wrap(replica.faults, "disk", engine.open(replica.disk, FileOptions.readWrite()));
        }
        catch (final IOException e)
        {
            throw new UserException(e.getMessage(), e);
        }
    }

    /** The secondary's silence or goodbye degrades the pair at once: the latch says why, the bitmap grows. */
    private final class LinkListener implements ControlLink.Listener
    {
        @Override
        public ControlLink.CheckpointAnswer onCheckpointPrepare(final long deadlineNanos, final long primaryEpoch)
        {
            return new ControlLink.CheckpointAnswer(-Errno.EINVAL, primary.epoch(),
                "the primary coordinates checkpoints; it does not take them from its peer");
        }

        @Override
        public void onLost(final String reason)
        {
            primary.link().fail(-Errno.ETIMEDOUT, "control link: " + reason);
            out.printf("understudy: peer lost: %s; the pair is degraded, the dirty bitmap is kept%n", reason);
            out.flush();
        }

        @Override
        public void onGoodbye(final boolean failover, final String reason)
        {
            primary.link().fail(-Errno.ESHUTDOWN, "the secondary ended replication: " + reason);
            out.printf("understudy: the secondary ended the control link%s: %s; the pair is degraded%n",
                failover ? " (it took over)" : "", reason);
            out.flush();
        }
    }
}
