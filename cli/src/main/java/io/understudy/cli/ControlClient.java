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

/** Requests on a daemon's control socket ({@link ControlServer}): sends one, returns the reply's value. */
final class ControlClient
{
    private ControlClient()
    {
    }

    /**
     * One request on its own connection.
     *
     * @return the {@code return} object.
     * @throws UserException with the daemon's one-line reason on an {@code error} reply, or if nobody answers.
     */
    static JsonNode execute(final Path socket, final String command, final ObjectNode arguments)
    {
        try (SocketChannel channel = connect(socket))
        {
            return request(socket, channel, reader(channel), command, arguments);
        }
        catch (final IOException ex)
        {
            throw noAnswer(socket, ex);
        }
    }

    static SocketChannel connect(final Path socket) throws IOException
    {
        final SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        try
        {
            channel.connect(UnixDomainSocketAddress.of(socket));
            return channel;
        }
        catch (final IOException ex)
        {
            channel.close();
            throw ex;
        }
    }

    static BufferedReader reader(final SocketChannel channel)
    {
        return new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
    }

    /**
     * One request on an open connection whose next line is its reply (no events subscribed yet).
     *
     * @return the {@code return} object.
     * @throws UserException with the daemon's one-line reason on an {@code error} reply, or if it closes.
     */
    static JsonNode request(
        final Path socket, final SocketChannel channel, final BufferedReader in, final String command,
        final ObjectNode arguments) throws IOException
    {
        final ObjectNode request = ControlServer.JSON.createObjectNode().put("execute", command);
        request.set("arguments", arguments);
        final OutputStream out = Channels.newOutputStream(channel);
        out.write((ControlServer.JSON.writeValueAsString(request) + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
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

    static UserException noAnswer(final Path socket, final IOException cause)
    {
        return new UserException(socket + ": no daemon answers on this control socket (" + cause.getMessage() + ")",
            cause);
    }
}
