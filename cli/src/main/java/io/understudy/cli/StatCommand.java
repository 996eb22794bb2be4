package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.CountersFile;
import io.understudy.cli.counters.MappedFileException;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.Callable;

/**
 * {@code understudy stat}: a daemon's counters read straight from its counters file, as AeronStat reads Aeron's
 * CnC file. It never talks to the daemon, so it answers while the daemon is hung, stopped or gone, and says which
 * (a heartbeat that stopped moving, a pid that no longer runs).
 */
@Command(
    name = "stat",
    mixinStandardHelpOptions = true,
    description = {
        "Print a daemon's counters from its counters file, without talking to the daemon: works while the",
        "daemon is hung or stopped, and after it exited (its last figures). Warns when the daemon has not",
        "refreshed the file for " + StatCommand.STALE_AFTER_MS + " ms or its process is gone."})
final class StatCommand implements Callable<Integer>
{
    /** Heartbeats come every duty cycle (1 ms when idle); this much silence means the daemon is not running. */
    static final long STALE_AFTER_MS = 2000;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    static final class Source
    {
        @Option(names = "--control", paramLabel = "PATH",
            description = "The daemon's control socket (for serve: its --socket); reads the counters file " +
                "beside it, PATH" + CountersOptions.COUNTERS_SUFFIX + ".")
        Path control;

        @Option(names = "--counters", paramLabel = "FILE", description = "The daemon's counters file.")
        Path counters;
    }

    @Option(names = "--json", description = "Print one JSON object (per interval with --watch).")
    boolean json;

    @Option(names = "--watch", description = "Print again every interval until interrupted.")
    boolean watch;

    @Option(names = "--interval", paramLabel = "MS", defaultValue = "1000",
        description = "Interval of --watch (default: ${DEFAULT-VALUE}).")
    long intervalMillis;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws InterruptedException
    {
        if (intervalMillis <= 0)
        {
            throw new UserException("--interval must be positive");
        }
        final Path path = source.counters != null ? source.counters :
            CountersOptions.sibling(source.control, CountersOptions.COUNTERS_SUFFIX);
        final PrintWriter out = spec.commandLine().getOut();
        do
        {
            print(out, read(path));
            out.flush();
            if (watch)
            {
                Thread.sleep(intervalMillis);
            }
        }
        while (watch);
        return 0;
    }

    /**
     * Reads the file once (reopened each time: a restarted daemon replaces it).
     *
     * @throws UserException naming why the file was refused.
     */
    static ObjectNode read(final Path path)
    {
        try (CountersFile file = CountersFile.open(path))
        {
            final long now = System.currentTimeMillis();
            final long heartbeatAge = now - file.heartbeatMs();
            final boolean alive = ProcessHandle.of(file.pid()).map(ProcessHandle::isAlive).orElse(false);
            final ObjectNode node = ControlServer.JSON.createObjectNode()
                .put("file", path.toString())
                .put("version", file.version())
                .put("role", file.role().label())
                .put("mode", file.shared() ? "shared" : "non-shared")
                .put("pid", file.pid())
                .put("alive", alive)
                .put("start-time", Instant.ofEpochMilli(file.startTimeMs()).toString())
                .put("heartbeat-age-ms", heartbeatAge)
                .put("stale", heartbeatAge > STALE_AFTER_MS);
            CountersJson.put(file.reader(), node.putObject("counters"));
            return node;
        }
        catch (final MappedFileException e)
        {
            throw new UserException(e.getMessage() + " [" + e.reason().label() + "]", e);
        }
    }

    private void print(final PrintWriter out, final ObjectNode node)
    {
        if (json)
        {
            out.println(node.toString());
            return;
        }
        out.printf("%s: %s daemon (%s), pid %d, started %s, heartbeat %d ms ago%n", node.path("file").asText(),
            node.path("role").asText(), node.path("mode").asText(), node.path("pid").asLong(),
            node.path("start-time").asText(), node.path("heartbeat-age-ms").asLong());
        if (!node.path("alive").asBoolean())
        {
            out.printf("  the daemon (pid %d) is not running: these are its last figures%n", node.path("pid").asLong());
        }
        else if (node.path("stale").asBoolean())
        {
            out.printf("  WARNING: the daemon has not updated its counters for %.1f s: it is hung, stopped " +
                "(SIGSTOP) or starved; the figures are as of then%n", node.path("heartbeat-age-ms").asLong() / 1000.0);
        }
        CountersJson.print(out, node.path("counters"));
    }
}
