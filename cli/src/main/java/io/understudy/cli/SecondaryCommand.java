package io.understudy.cli;

import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import io.understudy.engine.replication.ReplicationSecondary;
import org.agrona.CloseHelper;
import org.agrona.concurrent.AgentRunner;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code understudy secondary}: the secondary sidecar. Serves the forwarding sink ({@code --listen}: an NBD export
 * on TCP with the control link on a second port, or an Aeron channel carrying both), the SVM's disk A > H > S
 * (NBD on {@code --socket}) and the control socket, until SIGINT/SIGTERM.
 * <p>
 * A config file with several {@code [disk NAME]} sections makes one sidecar of several disks: one
 * {@link SecondaryDisk} each (own files, state record, sink and control link, SVM export), one control socket,
 * counters file and duty thread for all. A disk that cannot start stops the start, names itself, and everything
 * opened is released.
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

    /** The options a config file's sections give per disk. */
    private static final List<String> PER_DISK = List.of("--disk", "--socket", "--hidden", "--active", "--state",
        "--listen", "--control-listen");

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

    @Option(names = "--hidden-cluster-size", paramLabel = "SIZE", converter = ByteSize.class,
        description = "H's cluster size, a power of two from 4K up to --cluster-size: what the secondary copies into " +
            "H before a forwarded write lands. 4K copies 4 KiB before a 4 KiB write instead of a whole cluster, " +
            "for 16 times the bitmap memory of H and the COW filter at 64K (default: 4K; in shared mode " +
            "--cluster-size, the unit the primary ships originals in).")
    Long hiddenClusterSize;

    @Option(names = "--cow-copy", paramLabel = "HOW", defaultValue = "memory",
        description = "How originals go from the disk into H in non-shared mode: memory (read, then write: any " +
            "files) or kernel (copy_file_range where H and the disk share a file system; on XFS or btrfs H then " +
            "shares the disk's blocks, which first writes their dirty pages out). Which is faster depends on the " +
            "file system and the writes; the cow-copies-offloaded counter shows what the kernel copied (default: " +
            "${DEFAULT-VALUE}).")
    CowCopy cowCopy;

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

    private final ControlEvents events = new ControlEvents();
    private final List<SecondaryDisk> disks = new ArrayList<>();
    /** The disks as the control socket, the duty thread and the ready line see them; set once all are made. */
    private DiskGroup group;
    private DaemonCounters counters;
    private PrintWriter out;

    @Override
    public Integer call() throws Exception
    {
        out = spec.commandLine().getOut();
        final List<SecondaryDisk.Spec> specs = validate();
        final int hiddenClusterSize = hiddenClusterSize();
        final ShutdownSignal shutdown = new ShutdownSignal();
        // Each disk is closed once inside the engine's scope, or here if the sidecar never got that far.
        try
        {
            for (final SecondaryDisk.Spec disk : specs)
            {
                DiskGroup.perDisk(replica, disk.name(), () -> disks.add(new SecondaryDisk(disk, replica,
                    hiddenClusterSize, cowCopy, resynced, replica.isMultiDisk(), events, out)));
            }
            group = new DiskGroup("secondary", replica, disks);
            final boolean overAeron = specs.stream().anyMatch(disk -> disk.listen() instanceof AeronUri);
            try (DaemonCounters _ = counters = countersOptions.open(DaemonRole.SECONDARY, replica.shared,
                    replica.control, out);
                IoEngine engine = IoEngines.create(replica.ioMode, replica.ioWorkers(overAeron),
                    replica.ioOffload(overAeron)))
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
        for (final SecondaryDisk disk : disks)
        {
            DiskGroup.perDisk(replica, disk.name(), () -> disk.open(engine, counters));
        }
        try
        {
            try (DutyCycle _ = new DutyCycle("secondary-duty", counters.dutyCycle(group::doWork)))
            {
                for (final SecondaryDisk disk : disks)
                {
                    DiskGroup.perDisk(replica, disk.name(), disk::start);
                }
                serve(shutdown);
            }
        }
        finally
        {
            disks.forEach(SecondaryDisk::endReplication);
        }
        for (final SecondaryDisk disk : disks)
        {
            disk.finalFlush();
            disk.markClean();
        }
    }

    private int hiddenClusterSize()
    {
        if (hiddenClusterSize == null)
        {
            return ReplicationSecondary.defaultHiddenClusterSize((int)replica.clusterSize, replica.shared);
        }
        if (Long.bitCount(hiddenClusterSize) != 1 || hiddenClusterSize < 4096 ||
            hiddenClusterSize > replica.clusterSize)
        {
            throw new UserException("--hidden-cluster-size must be a power of two in [4K, --cluster-size " +
                replica.clusterSize + "]: " + hiddenClusterSize);
        }
        return hiddenClusterSize.intValue();
    }

    private List<SecondaryDisk.Spec> validate()
    {
        if (!replica.isMultiDisk())
        {
            replica.validate();
            InjectedFault.validate(replica.faults, Set.of("disk", "hidden", "active"));
            return List.of(validate(new SecondaryDisk.Spec(replica.singleDiskName(), null,
                replica.disk, replica.socket, hidden, active, statePath, listen, controlListen, replica.faults), ""));
        }
        replica.validateSidecar();
        replica.refusePerDiskFlags(spec.commandLine().getParseResult(), PER_DISK);
        final List<SecondaryDisk.Spec> specs = new ArrayList<>();
        for (final ConfigFile.DiskSection section : replica.config.disks())
        {
            final String subject = ReplicaOptions.subject(section);
            final List<InjectedFault> faults = replica.faults(section);
            final PeerUri sink = ReplicaOptions.convert(section, "--listen", new PeerUri.Converter());
            if (sink == null)
            {
                throw new UserException(subject + "needs listen = URI (" + PeerUri.USAGE + ")");
            }
            final ConfigFile.Value state = section.get("--state");
            final SecondaryDisk.Spec disk = new SecondaryDisk.Spec(section.name(), section.where(),
                ReplicaOptions.path(section, "--disk", "file"), ReplicaOptions.path(section, "--socket", "socket"),
                ReplicaOptions.path(section, "--hidden", "hidden"), ReplicaOptions.path(section, "--active", "active"),
                state == null ? null : Path.of(state.text()), sink,
                ReplicaOptions.convert(section, "--control-listen", new ListenAddress.Converter()), faults);
            ReplicaOptions.diskExists(disk.disk(), subject);
            replica.socketIsNotControl(disk.socket(), subject);
            try
            {
                InjectedFault.validate(faults, Set.of("disk", "hidden", "active"));
            }
            catch (final UserException e)
            {
                throw new UserException(subject + e.getMessage(), e);
            }
            specs.add(validate(disk, subject));
        }
        refuseSharing(specs);
        return specs;
    }

    /** Checks one disk's files and link and derives its defaults (state record, control link). */
    private SecondaryDisk.Spec validate(final SecondaryDisk.Spec disk, final String subject)
    {
        final boolean flags = subject.isEmpty();
        if (disk.hidden().equals(disk.active()) || disk.hidden().equals(disk.disk()) ||
            disk.active().equals(disk.disk()))
        {
            throw new UserException(subject + (flags ? "--disk, --hidden and --active" : "file, hidden and active") +
                " must be three different files");
        }
        final Path state = disk.state() != null ? disk.state() :
            disk.hidden().resolveSibling(disk.hidden().getFileName() + ".state");
        if (state.equals(disk.hidden()) || state.equals(disk.active()) || state.equals(disk.disk()))
        {
            throw new UserException(subject + (flags ? "--state must differ from --disk, --hidden and --active" :
                "state must differ from file, hidden and active"));
        }
        try
        {
            replica.validateTransport(disk.listen(), flags ? "--listen" : "listen");
        }
        catch (final UserException e)
        {
            throw new UserException(subject + e.getMessage(), e);
        }
        ListenAddress control = disk.controlListen();
        if (disk.listen() instanceof AeronUri && control != null)
        {
            throw new UserException(subject + (flags ? "--control-listen" : "control-listen") + " is for NBD: over " +
                "Aeron the control messages share the " + (flags ? "--listen" : "listen") + " channel");
        }
        if (disk.listen() instanceof NbdUri nbd)
        {
            if (control == null)
            {
                control = new ListenAddress(nbd.host(), nbd.port() == 0 ? 0 : nbd.port() + 1);
            }
            if (control.port() != 0 && control.port() == nbd.port() && control.host().equals(nbd.host()))
            {
                throw new UserException(subject + (flags ? "--control-listen must differ from --listen" :
                    "control-listen must differ from listen"));
            }
        }
        return new SecondaryDisk.Spec(disk.name(), disk.where(), disk.disk(), disk.socket(), disk.hidden(),
            disk.active(), state, disk.listen(), control, disk.faults());
    }

    /**
     * What the config file could not see: a default state record ({@code hidden} + .state) that is another disk's
     * file, or a default control link (the sink's port + 1) that is another disk's sink or control link.
     */
    private static void refuseSharing(final List<SecondaryDisk.Spec> specs)
    {
        final Map<Path, String> files = new HashMap<>();
        final Map<ListenAddress, String> ports = new HashMap<>();
        for (final SecondaryDisk.Spec disk : specs)
        {
            for (final Path file : List.of(disk.disk(), disk.hidden(), disk.active(), disk.state()))
            {
                final String other = files.put(file.toAbsolutePath().normalize(), disk.name());
                if (other != null && !other.equals(disk.name()))
                {
                    throw new UserException("[disk " + disk.name() + "] at " + disk.where() + ": " + file + " is " +
                        "disk " + other + "'s file as well: no two disks may share a file");
                }
            }
            final List<ListenAddress> addresses = new ArrayList<>();
            if (disk.listen() instanceof NbdUri nbd)
            {
                addresses.add(new ListenAddress(nbd.host(), nbd.port()));
                addresses.add(disk.controlListen());
            }
            for (final ListenAddress address : addresses)
            {
                final String other = address.port() == 0 ? null : ports.put(address, disk.name());
                if (other != null)
                {
                    throw new UserException("[disk " + disk.name() + "] at " + disk.where() + ": " +
                        address.host() + ":" + address.port() + " is disk " + other + "'s link as well " +
                        "(control-listen defaults to the listen port + 1): every disk needs its own");
                }
            }
        }
    }

    private void serve(final ShutdownSignal shutdown) throws InterruptedException
    {
        try
        {
            for (final SecondaryDisk disk : disks)
            {
                DiskGroup.perDisk(replica, disk.name(), () -> disk.serve(counters));
            }
            try (ControlServer control = startControl();
                AgentRunner _ = StatusWatch.start(disks.stream().map(SecondaryDisk::watch).toList()))
            {
                group.printReady(out, control.path());
                final String signal = shutdown.await();
                out.printf("understudy: %s received: draining, flushing%n", signal);
                out.flush();
                disks.forEach(SecondaryDisk::goodbye);
            }
        }
        finally
        {
            disks.forEach(SecondaryDisk::closeEndpoints);
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
