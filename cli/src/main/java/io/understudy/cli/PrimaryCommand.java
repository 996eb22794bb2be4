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
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ErrorLatch;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationStage;
import io.understudy.nbd.server.NbdServer;
import org.agrona.concurrent.AgentRunner;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * {@code understudy primary}: the primary sidecar. Serves the guest's disk on {@code --socket}, forwards every
 * write to the peer over NBD or Aeron and links to an Understudy secondary's control link (checkpoint
 * coordination, heartbeats); an NBD peer without a control link is a plain NBD server (or QEMU) whose
 * checkpoints an orchestrator runs.
 */
@Command(
    name = "primary",
    mixinStandardHelpOptions = true,
    description = {
        "Run the primary sidecar: the guest's disk is served on --socket, writes are forwarded to --peer",
        "(the scheme picks the transport). Over NBD the secondary's control link is reached at --peer-control",
        "(default: the peer's host and port + 1; if nobody answers there the peer is treated as a plain NBD",
        "server); over Aeron it shares the peer's channel. Runs until SIGINT or SIGTERM, then drains, flushes",
        "and exits 0."})
final class PrimaryCommand implements Callable<Integer>
{
    static final String GUEST_EXPORT = "pvm";

    @Mixin
    ReplicaOptions replica;

    @Mixin
    CountersOptions countersOptions;

    @Option(names = "--peer", required = true, paramLabel = "URI", converter = PeerUri.Converter.class,
        description = "The secondary's forwarding sink: " + PeerUri.USAGE + ".")
    PeerUri peerUri;

    @Option(names = "--peer-control", paramLabel = "HOST:PORT", converter = ListenAddress.Converter.class,
        description = "NBD only: the secondary's control link (default: --peer's host, port + 1).")
    ListenAddress peerControl;

    @Option(names = "--connect-timeout-ms", paramLabel = "MS", defaultValue = "10000",
        description = "How long to retry reaching the peer at start (default: ${DEFAULT-VALUE}).")
    long connectTimeoutMillis;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    private final PeerStatus peer = new PeerStatus();
    private final ControlEvents events = new ControlEvents();
    private final StatusWatch watch = new StatusWatch(events, this::status);
    /** Volatile: the link listener may run before the primary exists, on the link's thread. */
    private volatile ReplicationPrimary primary;
    private DaemonCounters counters;
    /** Set once connected; volatile: status runs on control-socket threads. */
    private volatile PeerConnection connection;
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
            IoEngine engine = IoEngines.create(replica.ioMode, replica.ioWorkers);
            BlockDevice disk = open(engine);
            PeerConnection connected = connectPeer(disk.size()))
        {
            connection = connected;
            primary = new ReplicationPrimary(disk, connection.forwarding(), replica.shared, (int)replica.clusterSize,
                TimeUnit.MILLISECONDS.toNanos(replica.ioTimeoutMillis), SecondaryCommand.QUEUE_DEPTH);
            counters.primary(primary, peer);
            try (ReplicationPrimary _ = primary;
                DutyCycle _ = new DutyCycle("primary-duty", counters.dutyCycle(this::dutyCycle)))
            {
                adoptControl(connection);
                final ControlResult started = primary.start(ReplicationMode.PRIMARY);
                if (!started.ok())
                {
                    throw new UserException("start failed: " + started.reason());
                }
                serve(shutdown, connection);
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
        replica.validateTransport(peerUri, "--peer");
        if (peerUri instanceof NbdUri nbd && peerControl == null)
        {
            peerControl = new ListenAddress(nbd.host(), nbd.port() + 1);
        }
        if (peerUri instanceof AeronUri && peerControl != null)
        {
            throw new UserException("--peer-control is for NBD peers: over Aeron the control messages share the " +
                "peer's channel");
        }
    }

    private void serve(final ShutdownSignal shutdown, final PeerConnection connection) throws InterruptedException
    {
        try (NbdServer _ = Exports.unix(primary, GUEST_EXPORT, replica.socket, out, counters);
            ControlServer control = startControl();
            AgentRunner _ = watch.start())
        {
            out.printf("understudy: primary ready (%s, %d bytes, cluster %d): guest export nbd+unix:///?socket=%s, " +
                "%s, control socket %s%n", replica.shared ? "shared" : "non-shared", primary.size(),
                replica.clusterSize, replica.socket, connection.describe(), control.path());
            out.flush();
            final String signal = shutdown.await();
            out.printf("understudy: %s received: draining, flushing%n", signal);
            out.flush();
        }
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
        return switch (peerUri)
        {
            case NbdUri nbd -> NbdPeerConnection.connect(nbd, peerControl, hello, connectTimeoutMillis, epoch,
                new LinkListener());
            case AeronUri aeron -> AeronPeerConnection.connect(aeron, replica.aeronDir, hello, connectTimeoutMillis,
                epoch, new LinkListener());
        };
    }

    /** A link lost before the primary existed is reported now: the listener had nobody to tell. */
    private void adoptControl(final PeerConnection connection)
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
        out.printf("understudy: %s%n", connection.describe());
        out.flush();
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
                final PeerControl link = peer.link();
                yield StatusJson.checkpoint(watch.checkpoint(() -> link == null ? primary.checkpoint(timeoutNanos) :
                    primary.checkpoint(timeoutNanos,
                        deadline -> link.checkpointPeer(deadline, primary.epoch()).result())));
            }
            case "failover" -> watch.failover(() -> failover(timeoutNanos));
            case "stop" ->
            {
                if (arguments.path("failover").asBoolean(false))
                {
                    yield watch.failover(() -> failover(timeoutNanos));
                }
                peer.goodbye(false, "replication stopped on the primary");
                yield StatusJson.control("stop", primary.stop(false, timeoutNanos));
            }
            default -> throw new ControlException(ControlException.COMMAND_NOT_FOUND, "unknown command '" + command +
                "' (the primary knows status, checkpoint, failover, stop, subscribe)");
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
        final PeerConnection current = connection;
        if (current != null)
        {
            current.toJson(status.putObject("transport"));
        }
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
                out.printf("understudy: peer lost: %s; --on-peer-loss failover: dropping the secondary, serving " +
                    "alone, the dirty bitmap is kept%n", reason);
                out.flush();
                Thread.ofVirtual().name("peer-loss-failover").start(() ->
                {
                    final ControlResult result = current.stop(true,
                        TimeUnit.MILLISECONDS.toNanos(replica.ioTimeoutMillis));
                    out.printf("understudy: automatic failover %s (state %s)%n", result.ok() ? "done" :
                        "failed: " + result.reason(), current.state().label());
                    out.flush();
                });
                return;
            }
            out.printf("understudy: peer lost: %s; the pair is degraded, the dirty bitmap is kept%n", reason);
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
            out.printf("understudy: the secondary ended the control link%s: %s; the pair is degraded%n",
                failover ? " (it took over)" : "", reason);
            out.flush();
        }
    }
}
