package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * A thin client of a daemon's control socket: sends one command with a deadline and prints the daemon's
 * {@code return} object. Failures reach the user as one line (exit 1) through {@link UserException}.
 * <p>
 * A sidecar of several disks answers per disk (see {@link DiskGroup}): each disk's outcome is printed on a line
 * of its own, and the command fails (exit 1) naming the disks that failed, after every disk was tried.
 */
abstract class ControlCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Spec
    CommandSpec spec;

    @Option(names = "--disk", paramLabel = "NAME",
        description = "Only this disk of a sidecar of several disks (default: every disk, in config order).")
    String disk;

    /** @return the control-socket command this client executes. */
    abstract String command();

    /** @return the deadline the daemon gets for the whole operation. */
    abstract long timeoutMillis();

    /** @return true to report the daemon's commit progress on stderr while the command runs (failover). */
    boolean showsProgress()
    {
        return false;
    }

    /** Adds the command's own arguments; the deadline is already there. */
    void addArguments(final ObjectNode arguments)
    {
    }

    @Override
    public final Integer call()
    {
        if (timeoutMillis() <= 0)
        {
            throw new UserException("--timeout-ms must be positive");
        }
        final ObjectNode arguments = ControlServer.JSON.createObjectNode().put("timeout-ms", timeoutMillis());
        addArguments(arguments);
        if (disk != null)
        {
            arguments.put("disk", disk);
        }
        final Thread progress = showsProgress() ?
            Thread.ofVirtual().name("progress").start(new CommitProgress(socket.control, spec.commandLine().getErr())) :
            null;
        try
        {
            final JsonNode result = ControlClient.execute(socket.control, command(), arguments);
            if (!result.has("disks"))
            {
                spec.commandLine().getOut().println(result.toString());
                return 0;
            }
            printPerDisk(spec.commandLine().getOut(), result);
            return 0;
        }
        finally
        {
            if (progress != null)
            {
                progress.interrupt();
            }
        }
    }

    /** One line per disk: "NAME: ok, changed: {...}" or "NAME: FAILED, unchanged: CLASS: why"; then the verdict. */
    private void printPerDisk(final PrintWriter out, final JsonNode result)
    {
        final List<String> failed = new ArrayList<>();
        for (final Map.Entry<String, JsonNode> entry : result.path("disks").properties())
        {
            final ObjectNode outcome = ((ObjectNode)entry.getValue()).deepCopy();
            final boolean ok = outcome.remove("ok").asBoolean();
            final String changed = outcome.remove("changed").asBoolean() ? "changed" : "unchanged";
            if (ok)
            {
                out.printf("%s: ok, %s: %s%n", entry.getKey(), changed, outcome);
            }
            else
            {
                failed.add(entry.getKey());
                out.printf("%s: FAILED, %s: %s: %s%n", entry.getKey(), changed, outcome.path("error").path("class")
                    .asText(), outcome.path("error").path("desc").asText());
            }
        }
        out.flush();
        if (!failed.isEmpty())
        {
            throw new UserException(command() + " failed on " + failed.size() + " of " +
                result.path("disks").size() + " disks: " + String.join(", ", failed));
        }
    }
}
