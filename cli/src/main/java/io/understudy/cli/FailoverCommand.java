package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code understudy failover}: stop(failover=true), the operator's take-over. */
@Command(
    name = "failover",
    mixinStandardHelpOptions = true,
    description = {
        "Take over from a lost peer. On the secondary: refuse forwarded writes, commit the active and hidden",
        "overlays into the disk and keep serving the SVM. On the primary: drop the secondary and serve the guest",
        "alone, keeping the dirty bitmap for a resync. Waits for the commit to finish."})
final class FailoverCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Option(names = "--timeout-ms", paramLabel = "MS", defaultValue = "60000",
        description = "Deadline for I/O in flight to drain and for the commit to finish (default: ${DEFAULT-VALUE}).")
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
        final JsonNode result = ControlClient.execute(socket.control, "failover",
            ControlServer.JSON.createObjectNode().put("timeout-ms", timeoutMillis));
        spec.commandLine().getOut().println(result.toString());
        return 0;
    }
}
