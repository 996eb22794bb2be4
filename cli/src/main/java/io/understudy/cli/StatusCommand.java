package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.concurrent.Callable;

/** {@code understudy status}: the daemon's role, mode, state, epoch, latched error and peer link. */
@Command(
    name = "status",
    mixinStandardHelpOptions = true,
    description = {
        "Print the replication status: role, mode, state (none, running, checkpointing, failover,",
        "failover-failed, degraded, done), epoch, the latched error and the control link to the peer."})
final class StatusCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Option(names = "--json", description = "Print the status as one JSON object.")
    boolean json;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call()
    {
        final JsonNode status = ControlClient.execute(socket.control, "status", ControlServer.JSON.createObjectNode());
        if (json)
        {
            spec.commandLine().getOut().println(status.toString());
            return 0;
        }
        final JsonNode error = status.path("error");
        final JsonNode peer = status.path("peer");
        spec.commandLine().getOut().printf("role=%s mode=%s state=%s epoch=%d peer=%s%s error=%s%n",
            status.path("role").asText(), status.path("mode").asText(), status.path("state").asText(),
            status.path("epoch").asLong(), peer.path("link").asText(),
            peer.path("reason").asText().isEmpty() ? "" : " (" + peer.path("reason").asText() + ")",
            error.isNull() || error.isMissingNode() ? "none" : error.path("errno").asText() + ": " +
                error.path("reason").asText());
        return 0;
    }
}
