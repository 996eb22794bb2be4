package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.ErrorLogFile;
import io.understudy.cli.counters.MappedFileException;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.Callable;

/**
 * {@code understudy errors}: a daemon's distinct errors with their counts and first and last times, read from its
 * mapped error log without the daemon's help, so also after it stopped or crashed.
 */
@Command(
    name = "errors",
    mixinStandardHelpOptions = true,
    description = {
        "Print a daemon's distinct errors (type, message, stack trace) with how often and when they happened,",
        "from its error log file: works while the daemon runs, after it stopped and after a crash (kill -9).",
        "A restarted daemon starts a new log."})
final class ErrorsCommand implements Callable<Integer>
{
    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    static final class Source
    {
        @Option(names = "--control", paramLabel = "PATH",
            description = "The daemon's control socket (for serve: its --socket); reads the error log beside " +
                "it, PATH" + CountersOptions.ERRORS_SUFFIX + ".")
        Path control;

        @Option(names = "--file", paramLabel = "FILE", description = "The daemon's error log.")
        Path file;
    }

    @Option(names = "--json", description = "Print one JSON object.")
    boolean json;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call()
    {
        final Path path = source.file != null ? source.file :
            CountersOptions.sibling(source.control, CountersOptions.ERRORS_SUFFIX);
        final ObjectNode node = read(path);
        final PrintWriter out = spec.commandLine().getOut();
        if (json)
        {
            out.println(node.toString());
            return 0;
        }
        out.printf("%s: %s daemon, pid %d, started %s: %d distinct error(s)%n", path, node.path("role").asText(),
            node.path("pid").asLong(), node.path("start-time").asText(), node.path("distinct").asInt());
        for (final JsonNode error : node.path("errors"))
        {
            out.printf("%n%d observation(s), first %s, last %s%n%s", error.path("count").asInt(),
                error.path("first").asText(), error.path("last").asText(), error.path("error").asText());
        }
        return 0;
    }

    /** @throws UserException naming why the log was refused. */
    static ObjectNode read(final Path path)
    {
        try (ErrorLogFile log = ErrorLogFile.open(path))
        {
            final ObjectNode node = ControlServer.JSON.createObjectNode()
                .put("file", path.toString())
                .put("role", log.role().label())
                .put("pid", log.pid())
                .put("start-time", Instant.ofEpochMilli(log.startTimeMs()).toString());
            final ArrayNode errors = node.putArray("errors");
            final int distinct = log.read((count, firstMs, lastMs, encodedError) -> errors.addObject()
                .put("count", count)
                .put("first", Instant.ofEpochMilli(firstMs).toString())
                .put("last", Instant.ofEpochMilli(lastMs).toString())
                .put("error", encodedError));
            node.put("distinct", distinct);
            return node;
        }
        catch (final MappedFileException e)
        {
            throw new UserException(e.getMessage() + " [" + e.reason().label() + "]", e);
        }
    }
}
