package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code understudy stop}: ends replication, stop(failover) of the spec; the daemon keeps running. */
@Command(
    name = "stop",
    mixinStandardHelpOptions = true,
    description = {
        "Stop replication (the daemon keeps serving until SIGTERM). Without --failover: on the secondary the",
        "active and hidden overlays are emptied and the SVM view becomes the disk; on the primary guest I/O is",
        "refused from then on. With --failover: the same as 'understudy failover'."})
final class StopCommand extends ControlCommand
{
    @Option(names = "--failover", description = "stop(failover=true): take over from the peer.")
    boolean failover;

    @Option(names = "--timeout-ms", paramLabel = "MS", defaultValue = "60000",
        description = "Deadline for I/O in flight to drain (and a failover commit) (default: ${DEFAULT-VALUE}).")
    long timeoutMillis;

    @Override
    String command()
    {
        return "stop";
    }

    @Override
    long timeoutMillis()
    {
        return timeoutMillis;
    }

    @Override
    void addArguments(final ObjectNode arguments)
    {
        arguments.put("failover", failover);
    }
}
