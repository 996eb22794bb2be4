package io.understudy.cli;

import io.understudy.engine.io.IoMode;
import io.understudy.engine.io.IoOffload;
import picocli.CommandLine;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Options both replication daemons take. */
final class ReplicaOptions
{
    @Option(names = "--config", paramLabel = "FILE", parameterConsumer = ConfigFile.Consumer.class,
        description = "Read the sidecar's fields from FILE (FIELD = VALUE lines and one [disk NAME] section per " +
            "disk, see the README); flags after it override the file's sidecar-wide fields.")
    ConfigFile config;

    @Option(names = "--disk", required = true, paramLabel = "FILE",
        description = "The replicated disk (in shared mode the disk both hosts see). Must exist.")
    Path disk;

    @Option(names = "--shared", description = "Shared-disk mode (both hosts see the same disk).")
    boolean shared;

    @Option(names = "--socket", required = true, paramLabel = "PATH",
        description = "Unix socket of the VM-facing NBD export (answers the empty export name).")
    Path socket;

    @Option(names = "--control", required = true, paramLabel = "PATH",
        description = "Unix socket (mode 0600) for checkpoint, failover, stop and status.")
    Path control;

    @Option(names = "--cluster-size", paramLabel = "SIZE", defaultValue = "64K", converter = ByteSize.class,
        description = "Granularity of the dirty bitmap, of A and of shared-mode COW, a power of two in [4K, 1M]; " +
            "both sides must agree (default: ${DEFAULT-VALUE}, as QEMU). The secondary's H may be finer: " +
            "--hidden-cluster-size.")
    long clusterSize;

    @Option(names = "--heartbeat-ms", paramLabel = "MS", defaultValue = "1000",
        description = "Control-link heartbeat interval; the primary proposes it (default: ${DEFAULT-VALUE}).")
    int heartbeatMillis;

    @Option(names = "--heartbeat-timeout-ms", paramLabel = "MS", defaultValue = "5000",
        description = "Silence after which the peer is declared lost (default: ${DEFAULT-VALUE}).")
    int heartbeatTimeoutMillis;

    @Option(names = "--io-timeout-ms", paramLabel = "MS", defaultValue = "10000",
        description = "Deadline of every forwarded request and of draining I/O (default: ${DEFAULT-VALUE}).")
    long ioTimeoutMillis;

    @Option(names = "--io", paramLabel = "MODE", defaultValue = "auto", converter = IoModeConverter.class,
        description = "I/O backend: auto, uring or threads (default: ${DEFAULT-VALUE}).")
    IoMode ioMode;

    @Option(names = "--on-peer-loss", paramLabel = "ACTION", defaultValue = "report",
        description = "What to do when the peer's heartbeats stop: report (default) or failover. Without a " +
            "witness, failover on a partition makes both sides survivors (split brain): see the README.")
    PeerLossAction onPeerLoss;

    @Option(names = "--aeron-dir", paramLabel = "DIR",
        description = "Aeron only: use the external media driver of this directory (e.g. `understudy " +
            "media-driver`, needed for aeron:ipc between two daemons) instead of an embedded one.")
    Path aeronDir;

    @Option(names = "--io-workers", paramLabel = "N",
        description = "Worker threads of the thread backend, 0 for inline I/O on the thread that submits it " +
            "(default: 0, so that NBD connection threads do their own page-cache I/O as with serve; 2 on a " +
            "secondary with an Aeron link, for its flushes: see --io-offload).")
    Integer ioWorkers;

    @Option(names = "--io-offload", paramLabel = "WHAT",
        description = "What the I/O workers take: all, or flushes (flushes and FUA writes; reads and writes then " +
            "run inline). Default: flushes on a secondary with an Aeron link, whose duty thread must not wait " +
            "for a disk; all elsewhere.")
    IoOffload ioOffload;

    @Option(names = "--inject-fault", paramLabel = "TARGET:KIND:NTH[+]:ERRNO",
        converter = InjectedFault.Converter.class, description = InjectedFault.DESCRIPTION)
    List<InjectedFault> faults = List.of();

    /** Checks what only makes sense for one transport; {@code option} names the flag that gave the URI. */
    void validateTransport(final PeerUri uri, final String option)
    {
        if (uri instanceof NbdUri && aeronDir != null)
        {
            throw new UserException("--aeron-dir is for aeron: URIs, and " + option + " is " + uri);
        }
        if (uri instanceof AeronUri aeron && aeron.isIpc() && aeronDir == null)
        {
            throw new UserException(option + " aeron:ipc needs --aeron-dir: both daemons must share one media " +
                "driver (start one with `understudy media-driver --aeron-dir DIR`)");
        }
    }

    /** Checks what picocli cannot; throws {@link UserException} naming the bad option. */
    void validate()
    {
        diskExists(disk, "");
        validateSidecar();
        socketIsNotControl(socket, "");
    }

    /**
     * @return --io-workers, else the default: 2 where only flushes leave the submitting thread (flushes of two
     *         disks then wait side by side), else inline. Inline I/O measured about twice the replicated 4 KiB
     *         random-read IOPS of two workers on the primary, and about 1.4x the 4 KiB random-write IOPS at queue
     *         depth 32 on a secondary linked over NBD (buffered files: the hand-off costs more than the page-cache
     *         copy).
     */
    int ioWorkers(final boolean secondaryOverAeron)
    {
        if (ioWorkers != null)
        {
            return ioWorkers;
        }
        return ioOffload(secondaryOverAeron) == IoOffload.FLUSHES ? 2 : 0;
    }

    /**
     * @return --io-offload, else the default: flushes on a secondary that receives over Aeron, else all (which,
     *         with the default of no workers, means inline). Over Aeron the receiving thread is the duty thread,
     *         which also sends heartbeats and acks for every disk: an fdatasync of a forwarded flush on a slow disk
     *         must not stop those for seconds, but handing it every write too cost a fifth to a third of the QD32
     *         4 KiB write IOPS.
     */
    IoOffload ioOffload(final boolean secondaryOverAeron)
    {
        if (ioOffload != null)
        {
            return ioOffload;
        }
        return secondaryOverAeron ? IoOffload.FLUSHES : IoOffload.ALL;
    }

    /** The checks of {@link #validate()} that concern the whole sidecar, not one of its disks. */
    void validateSidecar()
    {
        if (Long.bitCount(clusterSize) != 1 || clusterSize < 4096 || clusterSize > (1 << 20))
        {
            throw new UserException("--cluster-size must be a power of two in [4K, 1M]: " + clusterSize);
        }
        if (heartbeatMillis <= 0)
        {
            throw new UserException("--heartbeat-ms must be positive");
        }
        if (heartbeatTimeoutMillis <= heartbeatMillis)
        {
            throw new UserException("--heartbeat-timeout-ms (" + heartbeatTimeoutMillis + ") must exceed " +
                "--heartbeat-ms (" + heartbeatMillis + ")");
        }
        if (ioWorkers != null && (ioWorkers < 0 || ioWorkers > 64))
        {
            throw new UserException("--io-workers must be in [0, 64]");
        }
        if (ioOffload == IoOffload.FLUSHES && ioWorkers != null && ioWorkers == 0)
        {
            throw new UserException("--io-offload flushes needs --io-workers of 1 or more: with 0 every request " +
                "runs inline");
        }
        if (ioTimeoutMillis <= 0)
        {
            throw new UserException("--io-timeout-ms must be positive");
        }
    }

    /** @param subject "" for the sidecar's only disk, else "[disk NAME] at FILE:LINE: " to say which disk. */
    static void diskExists(final Path disk, final String subject)
    {
        if (!Files.exists(disk))
        {
            throw new UserException(subject + disk + ": no such file");
        }
    }

    /** @param subject as for {@link #diskExists}. */
    void socketIsNotControl(final Path diskSocket, final String subject)
    {
        if (diskSocket.equals(control))
        {
            throw new UserException(subject + (subject.isEmpty() ? "--socket and --control must be different paths" :
                "socket " + diskSocket + " is the control socket"));
        }
    }

    /**
     * In a sidecar of several disks the per-disk fields come from the config file's sections only: a flag that
     * would override one would silently apply to the first disk alone.
     *
     * @param perDisk the command's options that a section gives, e.g. {@code --disk}, {@code --socket}.
     */
    void refusePerDiskFlags(final CommandLine.ParseResult parsed, final List<String> perDisk)
    {
        final ConfigFile.DiskSection first = config.disks().getFirst();
        for (final String option : perDisk)
        {
            final CommandLine.Model.OptionSpec matched = parsed.matchedOption(option);
            final int given = matched == null ? 0 : matched.originalStringValues().size();
            if (given != (first.get(option) == null ? 0 : 1))
            {
                throw new UserException(option + " is a per-disk field: " + config.path() + " describes " +
                    config.disks().size() + " disks, give it in their [disk NAME] sections, not as a flag");
            }
        }
    }

    /** @return true if a config file describes several disks: their fields are in its sections, not in flags. */
    boolean isMultiDisk()
    {
        return config != null && config.isMultiDisk();
    }

    /** @return the name of a sidecar's only disk: its config section's, else its file's. */
    String singleDiskName()
    {
        return config != null ? config.disks().getFirst().name() : disk.getFileName().toString();
    }

    /** @return "[disk NAME] at FILE:LINE: ", naming a disk of a config file in an error. */
    static String subject(final ConfigFile.DiskSection section)
    {
        return "[disk " + section.name() + "] at " + section.where() + ": ";
    }

    /** @return a section's value converted as picocli converts the flag, errors naming the file, line and field. */
    static <T> T convert(
        final ConfigFile.DiskSection section, final String option, final CommandLine.ITypeConverter<T> converter)
    {
        final ConfigFile.Value value = section.get(option);
        return value == null ? null : convert(value, converter);
    }

    private static <T> T convert(final ConfigFile.Value value, final CommandLine.ITypeConverter<T> converter)
    {
        try
        {
            return converter.convert(value.text());
        }
        catch (final Exception e)
        {
            throw new UserException(value.where() + ": " + e.getMessage(), e);
        }
    }

    /** @return a required path field of a section. */
    static Path path(final ConfigFile.DiskSection section, final String option, final String field)
    {
        final ConfigFile.Value value = section.get(option);
        if (value == null)
        {
            throw new UserException(subject(section) + "needs " + field + " = PATH");
        }
        return Path.of(value.text());
    }

    /** @return the sidecar-wide faults followed by the section's own. */
    List<InjectedFault> faults(final ConfigFile.DiskSection section)
    {
        final List<InjectedFault> all = new ArrayList<>(faults);
        for (final ConfigFile.Value value : section.all("--inject-fault"))
        {
            all.add(convert(value, new InjectedFault.Converter()));
        }
        return all;
    }
}
