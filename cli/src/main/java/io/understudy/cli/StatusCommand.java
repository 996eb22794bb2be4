package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code understudy status}: the daemon's role, mode, state, epoch, latched error and peer link, then its
 * counters (the figures {@code understudy stat} reads from the counters file, here as the daemon answers). A
 * sidecar of several disks gets a line per disk.
 */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = {
        "Print the replication status: role, mode, state (none, running, checkpointing, failover,",
        "failover-failed, degraded, done), epoch, the latched error and the control link to the peer, then",
        "the daemon's counters (as understudy stat shows them)."})
final class StatusCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Option(names = "--json", description = "Print the status as one JSON object (per interval with --watch).")
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
        final PrintWriter out = spec.commandLine().getOut();
        do
        {
            print(out, ControlClient.execute(socket.control, "status", ControlServer.JSON.createObjectNode()));
            out.flush();
            if (watch)
            {
                Thread.sleep(intervalMillis);
            }
        }
        while (watch);
        return 0;
    }

    private void print(final PrintWriter out, final JsonNode status)
    {
        if (json)
        {
            out.println(status.toString());
            return;
        }
        if (status.has("disks"))
        {
            // A sidecar of several disks: its own line, then one per disk, then the counters of all.
            out.printf("role=%s mode=%s disks=%d%n", status.path("role").asText(), status.path("mode").asText(),
                status.path("disks").size());
            for (final Map.Entry<String, JsonNode> disk : status.path("disks").properties())
            {
                out.printf("  %s: ", disk.getKey());
                printDisk(out, disk.getValue());
            }
        }
        else
        {
            out.printf("role=%s mode=%s ", status.path("role").asText(), status.path("mode").asText());
            printDisk(out, status);
        }
        CountersJson.print(out, status.path("counters"));
    }

    private static void printDisk(final PrintWriter out, final JsonNode status)
    {
        final JsonNode error = status.path("error");
        final JsonNode peer = status.path("peer");
        out.printf("state=%s epoch=%d peer=%s%s error=%s%n",
            status.path("state").asText(), status.path("epoch").asLong(), peer.path("link").asText(),
            peer.path("reason").asText().isEmpty() ? "" : " (" + peer.path("reason").asText() + ")",
            error.isNull() || error.isMissingNode() ? "none" : error.path("errno").asText() + ": " +
                error.path("reason").asText());
    }
}
