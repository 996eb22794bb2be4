package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.channels.SocketChannel;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code understudy events}: a thin client that subscribes on the control socket and prints the daemon's events
 * as they come, one per line, until interrupted or until the daemon closes the socket.
 */
@Command(
    name = "events",
    mixinStandardHelpOptions = true,
    description = {
        "Print the daemon's events (STATE_CHANGE, CHECKPOINT, PEER_LOST, REPLICATION_ERROR, FAILOVER_DONE, ...)",
        "as they happen, one per line, until interrupted (Ctrl-C). Exits 0 after the daemon's SHUTDOWN event;",
        "1 if it dropped this client for falling behind (EVENTS_OVERFLOW), closed the socket without SHUTDOWN",
        "(it died) or cannot be reached. See docs/control.md."})
final class EventsCommand implements Callable<Integer>
{
    @Mixin
    ControlSocketOption socket;

    @Option(names = "--json", description = "Print each event as the daemon sent it: one JSON object per line.")
    boolean json;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call()
    {
        final PrintWriter out = spec.commandLine().getOut();
        JsonNode last = ControlServer.JSON.createObjectNode();
        try (SocketChannel channel = ControlClient.connect(socket.control))
        {
            final BufferedReader in = ControlClient.reader(channel);
            ControlClient.request(socket.control, channel, in, ControlServer.SUBSCRIBE,
                ControlServer.JSON.createObjectNode());
            // On stderr, so that --json output stays pure events; scripts may wait for it before acting.
            spec.commandLine().getErr().printf("understudy: subscribed to the events of %s; Ctrl-C to stop%n",
                socket.control);
            spec.commandLine().getErr().flush();
            String line;
            while ((line = in.readLine()) != null)
            {
                last = ControlServer.JSON.readTree(line);
                out.println(json ? line : text(last));
                out.flush();
            }
        }
        catch (final IOException ex)
        {
            throw ControlClient.noAnswer(socket.control, ex);
        }
        final String name = last.path("event").asText();
        if (ControlEvents.OVERFLOW.equals(name))
        {
            throw new UserException("the daemon dropped this client: " + last.path("data").path("reason").asText());
        }
        if (!ControlEvents.SHUTDOWN.equals(name))
        {
            throw new UserException(socket.control + ": the daemon closed the control socket without SHUTDOWN: it " +
                "crashed or was killed");
        }
        return 0;
    }

    /** {@code 2026-11-22T10:04:12.123456Z STATE_CHANGE old=running new=checkpointing epoch=0}. */
    static String text(final JsonNode event)
    {
        final JsonNode timestamp = event.path("timestamp");
        final StringBuilder text = new StringBuilder()
            .append(Instant.ofEpochSecond(timestamp.path("seconds").asLong(),
                timestamp.path("microseconds").asLong() * 1000))
            .append(' ')
            .append(event.path("event").asText());
        for (final Map.Entry<String, JsonNode> field : event.path("data").properties())
        {
            final JsonNode value = field.getValue();
            // Text with spaces stays quoted, so that every field reads as one word.
            final boolean word = value.isTextual() && !value.asText().isEmpty() && !value.asText().contains(" ");
            text.append(' ').append(field.getKey()).append('=').append(word ? value.asText() : value.toString());
        }
        return text.toString();
    }
}
