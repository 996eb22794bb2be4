package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/** One request on a daemon's control socket ({@link ControlServer}): sends it, returns the reply's value. */
final class ControlClient
{
    private ControlClient()
    {
    }

    /**
     * @return the {@code return} object.
     * @throws UserException with the daemon's one-line reason on an {@code error} reply, or if nobody answers.
     */
    static JsonNode execute(final Path socket, final String command, final ObjectNode arguments)
    {
        final ObjectNode request = ControlServer.JSON.createObjectNode().put("execute", command);
        request.set("arguments", arguments);
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX))
        {
            channel.connect(UnixDomainSocketAddress.of(socket));
            final OutputStream out = Channels.newOutputStream(channel);
            out.write((ControlServer.JSON.writeValueAsString(request) + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            final BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel),
                StandardCharsets.UTF_8));
            final String line = in.readLine();
            if (line == null)
            {
                throw new UserException(socket + ": the daemon closed the control socket without answering");
            }
            final JsonNode reply = ControlServer.JSON.readTree(line);
            final JsonNode error = reply.get("error");
            if (error != null)
            {
                throw new UserException(command + " failed: " + error.path("desc").asText() + " (" +
                    error.path("class").asText() + ")");
            }
            return reply.get("return");
        }
        catch (final IOException ex)
        {
            throw new UserException(socket + ": no daemon answers on this control socket (" + ex.getMessage() + ")",
                ex);
        }
    }
}
