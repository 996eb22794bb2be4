package io.understudy.cli;

import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import org.agrona.CloseHelper;
import org.agrona.concurrent.AgentRunner;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code understudy primary}: the primary sidecar. Serves the guest's disk on {@code --socket}, forwards every
 * write to the peer over NBD or Aeron and links to an Understudy secondary's control link (checkpoint
 * coordination, heartbeats); an NBD peer without a control link is a plain NBD server (or QEMU) whose
 * checkpoints an orchestrator runs.
 * <p>
 * A config file with several {@code [disk NAME]} sections makes one sidecar of several disks: one
 * {@link PrimaryDisk} each (own lock, link, engine, export), one control socket, counters file and duty thread for
 * all. Every disk links to its peer before the sidecar says it is ready; a disk that cannot start stops the start,
 * names itself, and everything opened is released.
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

    /** The options a config file's sections give per disk. */
    private static final List<String> PER_DISK = List.of("--disk", "--socket", "--peer", "--peer-control");

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

    private final ControlEvents events = new ControlEvents();
    private final List<PrimaryDisk> disks = new ArrayList<>();
    /** The disks as the control socket, the duty thread and the ready line see them; set once all are made. */
    private DiskGroup group;
    private DaemonCounters counters;
    private PrintWriter out;

    @Override
    public Integer call() throws Exception
    {
        out = spec.commandLine().getOut();
        final List<PrimaryDisk.Spec> specs = validate();
        final ShutdownSignal shutdown = new ShutdownSignal();
        // Each disk is closed once inside the engine's scope, or here if the sidecar never got that far.
        try
        {
            for (final PrimaryDisk.Spec disk : specs)
            {
                DiskGroup.perDisk(replica, disk.name(), () -> disks.add(new PrimaryDisk(disk, replica,
                    connectTimeoutMillis, replica.isMultiDisk(), events, out)));
            }
            group = new DiskGroup("primary", replica, disks);
            try (DaemonCounters _ = counters = countersOptions.open(DaemonRole.PRIMARY, replica.shared,
                    replica.control, out);
                IoEngine engine = IoEngines.create(replica.ioMode, replica.ioWorkers(false), replica.ioOffload(false)))
            {
                try
                {
                    run(shutdown, engine);
                }
                finally
                {
                    CloseHelper.closeAll(disks);
                }
            }
        }
        finally
        {
            CloseHelper.closeAll(disks);
        }
        out.println("understudy: stopped cleanly");
        return 0;
    }

    private void run(final ShutdownSignal shutdown, final IoEngine engine) throws InterruptedException
    {
        for (final PrimaryDisk disk : disks)
        {
            DiskGroup.perDisk(replica, disk.name(), () -> disk.open(engine, counters));
        }
        try
        {
            try (DutyCycle _ = new DutyCycle("primary-duty", counters.dutyCycle(group::doWork)))
            {
                for (final PrimaryDisk disk : disks)
                {
                    DiskGroup.perDisk(replica, disk.name(), disk::start);
                }
                serve(shutdown);
            }
        }
        finally
        {
            disks.forEach(PrimaryDisk::endReplication);
        }
        for (final PrimaryDisk disk : disks)
        {
            disk.finalFlush();
        }
    }

    private List<PrimaryDisk.Spec> validate()
    {
        if (!replica.isMultiDisk())
        {
            replica.validate();
            InjectedFault.validate(replica.faults, Set.of("disk"));
            connectTimeoutPositive();
            return List.of(validate(new PrimaryDisk.Spec(replica.singleDiskName(), null, replica.disk,
                replica.socket, peerUri, peerControl, replica.faults), "--peer", ""));
        }
        replica.validateSidecar();
        connectTimeoutPositive();
        replica.refusePerDiskFlags(spec.commandLine().getParseResult(), PER_DISK);
        final List<PrimaryDisk.Spec> specs = new ArrayList<>();
        for (final ConfigFile.DiskSection section : replica.config.disks())
        {
            final String subject = ReplicaOptions.subject(section);
            final List<InjectedFault> faults = replica.faults(section);
            final PeerUri peer = ReplicaOptions.convert(section, "--peer", new PeerUri.Converter());
            if (peer == null)
            {
                throw new UserException(subject + "needs peer = URI (" + PeerUri.USAGE + ")");
            }
            final PrimaryDisk.Spec disk = new PrimaryDisk.Spec(section.name(), section.where(),
                ReplicaOptions.path(section, "--disk", "file"), ReplicaOptions.path(section, "--socket", "socket"),
                peer, ReplicaOptions.convert(section, "--peer-control", new ListenAddress.Converter()), faults);
            ReplicaOptions.diskExists(disk.disk(), subject);
            replica.socketIsNotControl(disk.socket(), subject);
            try
            {
                InjectedFault.validate(faults, Set.of("disk"));
            }
            catch (final UserException e)
            {
                throw new UserException(subject + e.getMessage(), e);
            }
            specs.add(validate(disk, "peer", subject));
        }
        refuseSharedControlLinks(specs);
        return specs;
    }

    private void connectTimeoutPositive()
    {
        if (connectTimeoutMillis <= 0)
        {
            throw new UserException("--connect-timeout-ms must be positive");
        }
    }

    /** Checks one disk's link and derives its control link's address; {@code option} names its peer field. */
    private PrimaryDisk.Spec validate(final PrimaryDisk.Spec disk, final String option, final String subject)
    {
        try
        {
            replica.validateTransport(disk.peerUri(), option);
        }
        catch (final UserException e)
        {
            throw new UserException(subject + e.getMessage(), e);
        }
        ListenAddress control = disk.peerControl();
        if (disk.peerUri() instanceof NbdUri nbd && control == null)
        {
            control = new ListenAddress(nbd.host(), nbd.port() + 1);
        }
        if (disk.peerUri() instanceof AeronUri && control != null)
        {
            throw new UserException(subject + (subject.isEmpty() ? "--peer-control" : "peer-control") + " is for " +
                "NBD peers: over Aeron the control messages share the peer's channel");
        }
        return new PrimaryDisk.Spec(disk.name(), disk.where(), disk.disk(), disk.socket(), disk.peerUri(), control,
            disk.faults());
    }

    /** A control link's default (the peer's port + 1) may be another disk's peer: two links, one address. */
    private static void refuseSharedControlLinks(final List<PrimaryDisk.Spec> specs)
    {
        final Map<ListenAddress, String> used = new HashMap<>();
        for (final PrimaryDisk.Spec disk : specs)
        {
            if (disk.peerUri() instanceof NbdUri nbd)
            {
                final String other = used.put(new ListenAddress(nbd.host(), nbd.port()), disk.name());
                if (other != null)
                {
                    throw new UserException("[disk " + disk.name() + "] at " + disk.where() + ": its peer " + nbd +
                        " is disk " + other + "'s link as well: every disk needs its own");
                }
            }
        }
        for (final PrimaryDisk.Spec disk : specs)
        {
            final String other = disk.peerControl() == null ? null : used.put(disk.peerControl(), disk.name());
            if (other != null)
            {
                throw new UserException("[disk " + disk.name() + "] at " + disk.where() + ": its control link " +
                    disk.peerControl().host() + ":" + disk.peerControl().port() + " is disk " + other + "'s link " +
                    "as well (peer-control defaults to the peer's port + 1): every disk needs its own");
            }
        }
    }

    private void serve(final ShutdownSignal shutdown) throws InterruptedException
    {
        try
        {
            for (final PrimaryDisk disk : disks)
            {
                DiskGroup.perDisk(replica, disk.name(), () -> disk.serve(counters));
            }
            try (ControlServer control = startControl();
                AgentRunner _ = StatusWatch.start(disks.stream().map(PrimaryDisk::watch).toList()))
            {
                group.printReady(out, control.path());
                final String signal = shutdown.await();
                out.printf("understudy: %s received: draining, flushing%n", signal);
                out.flush();
            }
        }
        finally
        {
            disks.forEach(PrimaryDisk::closeExport);
        }
    }

    private ControlServer startControl()
    {
        try
        {
            return new ControlServer(replica.control,
                (command, arguments) -> group.execute(command, arguments, counters), events);
        }
        catch (final IOException e)
        {
            throw new UserException(e.getMessage(), e);
        }
    }
}
