package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code understudy stop}: ends replication, stop(failover) of the spec; the daemon keeps running. */
@Command(
    name = "stop",
    mixinStandardHelpOptions = true,
    description = {
        "Stop replication (the daemon keeps serving until SIGTERM). Without --failover: on the secondary the",
        "active and hidden overlays are emptied and the SVM view becomes the disk; on the primary guest I/O is",
        "refused from then on. With --failover: the same as 'understudy failover'."})
final class StopCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Option(names = "--failover", description = "stop(failover=true): take over from the peer.")
    boolean failover;

    @Option(names = "--timeout-ms", paramLabel = "MS", defaultValue = "60000",
        description = "Deadline for I/O in flight to drain (and a failover commit) (default: ${DEFAULT-VALUE}).")
    long timeoutMillis;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call()
    {
        if (timeoutMillis <= 0)
        {
            throw new UserException("--timeout-ms must be positive");
        }
        final JsonNode result = ControlClient.execute(socket.control, "stop",
            ControlServer.JSON.createObjectNode().put("failover", failover).put("timeout-ms", timeoutMillis));
        spec.commandLine().getOut().println(result.toString());
        return 0;
    }
}
