package io.understudy.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * The daemon's control socket: a unix socket (mode 0600, so only the daemon's user can steer replication)
 * speaking a small QMP-like protocol, one JSON object per line each way:
 * <pre>
 *   request:  {"execute": "checkpoint", "arguments": {"timeout-ms": 5000}}
 *   reply:    {"return": {...}}   or   {"error": {"class": "GenericError", "desc": "why, in one line"}}
 * </pre>
 * Commands that change state run one at a time (the replication core's control operations are single-threaded
 * by contract); {@code status} runs beside them. Each connection is served on its own virtual thread and may
 * send several requests. {@code subscribe} is answered here, not by the daemon: from its reply on, the
 * connection also receives the daemon's {@link ControlEvents}, each line written whole between replies.
 */
final class ControlServer implements AutoCloseable
{
    /** Runs one command; throws {@link ControlException} for an {@code error} reply. */
    @FunctionalInterface
    interface Handler
    {
        ObjectNode execute(String command, JsonNode arguments) throws ControlException;
    }

    static final ObjectMapper JSON = new ObjectMapper();

    /** The one read-only command. */
    static final String QUERY = "status";

    /** Opts the connection in to events (explicitly: the one-shot thin clients read one reply line, no more). */
    static final String SUBSCRIBE = "subscribe";

    private final Path path;
    private final ServerSocketChannel server;
    private final Handler handler;
    private final ControlEvents events;
    private final Thread acceptThread;
    private volatile boolean closed;

    /** @param events the daemon's events; the server closes them (SHUTDOWN to subscribers) when it closes. */
    ControlServer(final Path path, final Handler handler, final ControlEvents events) throws IOException
    {
        UnixSockets.removeIfStale(path);
        this.path = path;
        this.handler = handler;
        this.events = events;
        this.server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try
        {
            server.bind(UnixDomainSocketAddress.of(path));
            // Tightened before the first accept: a client connecting in between is served only after this.
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
        }
        catch (final IOException ex)
        {
            server.close();
            throw new IOException("control socket " + path + ": " + ex.getMessage(), ex);
        }
        this.acceptThread = Thread.ofPlatform().daemon(true).name("control-socket").start(this::acceptLoop);
    }

    Path path()
    {
        return path;
    }

    @Override
    public void close()
    {
        closed = true;
        events.close();
        try
        {
            server.close();
            acceptThread.join(5000);
            Files.deleteIfExists(path);
        }
        catch (final IOException ignored)
        {
            // The socket file may be gone already; nothing else to undo.
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    private void acceptLoop()
    {
        while (!closed)
        {
            try
            {
                final SocketChannel client = server.accept();
                Thread.ofVirtual().name("control-client").start(() -> serve(client));
            }
            catch (final IOException ex)
            {
                if (closed)
                {
                    return;
                }
            }
        }
    }

    private void serve(final SocketChannel client)
    {
        final Connection connection = new Connection(client);
        try (client;
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(client),
                StandardCharsets.UTF_8)))
        {
            String line;
            while ((line = in.readLine()) != null)
            {
                if (line.isBlank())
                {
                    continue;
                }
                final ObjectNode reply = answer(line, connection);
                EventSubscriber subscribed = null;
                if (connection.subscribing)
                {
                    // Registered before the reply, so every event after the client read it reaches the client;
                    // delivered only after it, so the client never sees an event before its reply.
                    connection.subscribing = false;
                    connection.subscriber = subscribed = events.subscribe(connection);
                }
                connection.writeLine(JSON.writeValueAsString(reply));
                if (subscribed != null)
                {
                    subscribed.start();
                }
            }
        }
        catch (final IOException ignored)
        {
            // The client went away; its command (if any) ran to the end regardless.
        }
        finally
        {
            if (connection.subscriber != null)
            {
                events.unsubscribe(connection.subscriber);
            }
        }
    }

    private ObjectNode answer(final String line, final Connection connection)
    {
        final ObjectNode reply = JSON.createObjectNode();
        try
        {
            final JsonNode request;
            try
            {
                request = JSON.readTree(line);
            }
            catch (final JsonProcessingException ex)
            {
                throw new ControlException(ControlException.GENERIC, "not JSON: " + ex.getOriginalMessage());
            }
            final JsonNode execute = request == null ? null : request.get("execute");
            if (execute == null || !execute.isTextual())
            {
                throw new ControlException(ControlException.GENERIC, "expected {\"execute\": NAME, \"arguments\": " +
                    "{...}}");
            }
            final JsonNode arguments = request.has("arguments") ? request.get("arguments") : JSON.createObjectNode();
            if (!arguments.isObject())
            {
                throw new ControlException(ControlException.INVALID_PARAMETER, "arguments must be an object");
            }
            final ObjectNode result;
            if (SUBSCRIBE.equals(execute.asText()))
            {
                // Idempotent: a second subscribe on the same connection changes nothing.
                connection.subscribing = connection.subscriber == null;
                result = JSON.createObjectNode().put("queue-capacity", events.capacity());
            }
            else if (QUERY.equals(execute.asText()))
            {
                // Read-only: answers while a long command (a failover commit) runs, to show its progress.
                result = handler.execute(execute.asText(), arguments);
            }
            else
            {
                synchronized (this)
                {
                    result = handler.execute(execute.asText(), arguments);
                }
            }
            reply.set("return", result);
        }
        catch (final ControlException ex)
        {
            reply.putObject("error").put("class", ex.errorClass()).put("desc", ex.getMessage());
        }
        catch (final RuntimeException ex)
        {
            reply.putObject("error").put("class", ControlException.GENERIC).put("desc", String.valueOf(ex));
        }
        return reply;
    }

    /**
     * One client connection's write side: replies (from the connection's own thread) and events (from its
     * subscriber's writer) each take the lock for a whole line, so lines never interleave.
     */
    private static final class Connection implements EventSubscriber.Connection
    {
        private final SocketChannel channel;
        /** Plain: only the connection's own thread reads and writes these two. */
        private boolean subscribing;
        private EventSubscriber subscriber;

        Connection(final SocketChannel channel)
        {
            this.channel = channel;
        }

        @Override
        public synchronized void writeLine(final String line) throws IOException
        {
            final ByteBuffer bytes = ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8));
            while (bytes.hasRemaining())
            {
                channel.write(bytes);
            }
        }

        @Override
        public void close()
        {
            try
            {
                channel.close();
            }
            catch (final IOException ignored)
            {
                // Closing a socket the client may have closed first: nothing else to undo.
            }
        }
    }
}
