package io.understudy.cli.demo;

import io.understudy.cli.ByteSize;
import io.understudy.cli.IoModeConverter;
import io.understudy.cli.Understudy;
import io.understudy.engine.io.IoMode;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;

/**
 * {@code understudy demo}: the whole replication story in one process and under a minute, for someone who wants
 * to see it work before wiring two hosts and QEMU: both disk modes in turn, a guest writing through NBD,
 * checkpoints, a primary crash, failover, and every byte of the survivor checked against what the spec says it
 * must hold. The exit code is the verdict, so it doubles as a smoke test.
 */
@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    description = {
        "Run a primary and a secondary in this process on temporary files, first with",
        "a disk each, then on one shared disk. A guest writes random 4 KiB and",
        "sequential 1 MiB blocks to the primary's NBD export while a checkpoint is",
        "taken every --checkpoint-ms; then the primary crashes with writes in flight,",
        "the secondary fails over, and every byte of its disk is compared with the",
        "state at the last completed checkpoint. Prints a summary table; exits 1 if",
        "any byte differs."})
public final class DemoCommand implements Callable<Integer>
{
    private static final long MIN_SIZE = 8L << 20;
    private static final String LIBRARY_LOGGER = "io.understudy";

    @Option(names = "--seconds", paramLabel = "S", defaultValue = "12",
        description = "How long the guest writes in each mode before the crash (default: ${DEFAULT-VALUE}).")
    double seconds;

    @Option(names = "--size", paramLabel = "SIZE", defaultValue = "64M", converter = ByteSize.class,
        description = "Disk size, a multiple of 1 MiB, at least 8 MiB (default: ${DEFAULT-VALUE}).")
    long size;

    @Option(names = "--checkpoint-ms", paramLabel = "MS", defaultValue = "100",
        description = "Interval between checkpoints (default: ${DEFAULT-VALUE}).")
    long checkpointMillis;

    @Option(names = "--transport", paramLabel = "aeron|nbd", defaultValue = "aeron",
        converter = TransportConverter.class,
        description = "Link between primary and secondary: aeron (IPC, embedded media driver) or nbd (loopback " +
            "TCP) (default: ${DEFAULT-VALUE}).")
    DemoTransport transport;

    @Option(names = "--io", paramLabel = "MODE", defaultValue = "auto", converter = IoModeConverter.class,
        description = "I/O backend: auto, uring or threads (default: ${DEFAULT-VALUE}).")
    IoMode io;

    @Option(names = "--dir", paramLabel = "DIR",
        description = "Where the temporary files go (default: java.io.tmpdir).")
    Path dir;

    @Option(names = "--keep", description = "Keep the temporary files and print where they are.")
    boolean keep;

    @Option(names = "--no-progress", description = "No progress bar (it is off anyway when not on a terminal).")
    boolean noProgress;

    @Option(names = "--seed", paramLabel = "N", description = "Seed of offsets and data (default: random).")
    Long seed;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call()
    {
        final DemoSettings settings = validate();
        final PrintWriter out = spec.commandLine().getOut();
        final PrintWriter err = spec.commandLine().getErr();
        final Progress progress = new Progress(err, !noProgress && Progress.isTerminal());
        out.printf(Locale.ROOT, "understudy demo: %d MiB disks, %.1f s of guest writes per mode, a checkpoint " +
            "every %d ms, transport %s, I/O %s, seed %d%n", size >> 20, seconds, checkpointMillis, transport.label(),
            io.name().toLowerCase(Locale.ROOT), settings.seed());
        out.flush();
        final List<PhaseResult> results = new ArrayList<>();
        try (QuietLogs _ = QuietLogs.threshold(LIBRARY_LOGGER, Level.WARNING))
        {
            results.add(new DemoPhase(settings, false, out, progress).run());
            results.add(new DemoPhase(settings, true, out, progress).run());
        }
        out.println();
        SummaryTable.print(out, results);
        int exit = 0;
        for (final PhaseResult result : results)
        {
            final String problem = result.problem();
            if (problem != null)
            {
                err.println("understudy: demo: " + result.mode() + ": " + problem);
                exit = Understudy.EXIT_FAILURE;
            }
        }
        err.flush();
        return exit;
    }

    private DemoSettings validate()
    {
        final CommandLine commandLine = spec.commandLine();
        if (!(seconds > 0) || seconds > TimeUnit.DAYS.toSeconds(1))
        {
            throw new CommandLine.ParameterException(commandLine, "--seconds must be positive (at most a day)");
        }
        if (size < MIN_SIZE || size % GuestWorkload.SEQUENTIAL_BYTES != 0)
        {
            throw new CommandLine.ParameterException(commandLine, "--size must be a multiple of 1 MiB, at least " +
                "8 MiB: " + size);
        }
        if (checkpointMillis <= 0)
        {
            throw new CommandLine.ParameterException(commandLine, "--checkpoint-ms must be positive");
        }
        final Path parent = dir != null ? dir : Path.of(System.getProperty("java.io.tmpdir"));
        if (!Files.isDirectory(parent))
        {
            throw new CommandLine.ParameterException(commandLine, "--dir " + parent + " is not a directory");
        }
        return new DemoSettings(size, (long)(seconds * 1e9), TimeUnit.MILLISECONDS.toNanos(checkpointMillis),
            transport, io, parent, keep, seed != null ? seed : ThreadLocalRandom.current().nextLong());
    }

    /** Accepts the transport's name in any case. */
    static final class TransportConverter implements CommandLine.ITypeConverter<DemoTransport>
    {
        @Override
        public DemoTransport convert(final String value)
        {
            for (final DemoTransport candidate : DemoTransport.values())
            {
                if (candidate.label().equalsIgnoreCase(value))
                {
                    return candidate;
                }
            }
            throw new CommandLine.TypeConversionException("'" + value + "' is not a transport: use nbd or aeron");
        }
    }
}
