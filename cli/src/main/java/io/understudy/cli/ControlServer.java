package io.understudy.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
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
 * send several requests.
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

    private final Path path;
    private final ServerSocketChannel server;
    private final Handler handler;
    private final Thread acceptThread;
    private volatile boolean closed;

    ControlServer(final Path path, final Handler handler) throws IOException
    {
        UnixSockets.removeIfStale(path);
        this.path = path;
        this.handler = handler;
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
        try (client;
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(client),
                StandardCharsets.UTF_8));
            OutputStream out = Channels.newOutputStream(client))
        {
            String line;
            while ((line = in.readLine()) != null)
            {
                if (line.isBlank())
                {
                    continue;
                }
                final ObjectNode reply = answer(line);
                out.write((JSON.writeValueAsString(reply) + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
        }
        catch (final IOException ignored)
        {
            // The client went away; its command (if any) ran to the end regardless.
        }
    }

    private ObjectNode answer(final String line)
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
            if (QUERY.equals(execute.asText()))
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
}
