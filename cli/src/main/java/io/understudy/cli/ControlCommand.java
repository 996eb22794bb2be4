package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.util.concurrent.Callable;

/**
 * A thin client of a daemon's control socket: sends one command with a deadline and prints the daemon's
 * {@code return} object. Failures reach the user as one line (exit 1) through {@link UserException}.
 */
abstract class ControlCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Spec
    CommandSpec spec;

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
        final Thread progress = showsProgress() ?
            Thread.ofVirtual().name("progress").start(new CommitProgress(socket.control, spec.commandLine().getErr())) :
            null;
        try
        {
            final JsonNode result = ControlClient.execute(socket.control, command(), arguments);
            spec.commandLine().getOut().println(result.toString());
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
}
