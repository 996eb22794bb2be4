package io.understudy.nbd.interop;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * A QMP client for tests: one Unix-socket connection, one JSON document per line. Commands are sent one at a
 * time, so the next message that is not an event is the reply to the last command; events are queued apart.
 * Every wait has a deadline and a missed one fails the test, naming what was awaited.
 */
final class Qmp implements AutoCloseable
{
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Reader end-of-stream marker in the reply queue. */
    private static final Map<String, Object> CLOSED = Map.of();

    private final SocketChannel channel;
    private final BlockingQueue<Map<String, Object>> replies = new LinkedBlockingQueue<>();
    private final BlockingQueue<Map<String, Object>> events = new LinkedBlockingQueue<>();
    private final Thread reader;
    private final long timeoutNanos;

    private Qmp(final SocketChannel channel, final long timeoutNanos)
    {
        this.channel = channel;
        this.timeoutNanos = timeoutNanos;
        reader = Thread.ofPlatform().name("qmp-reader").daemon(true).start(this::readLoop);
    }

    /**
     * Connects (retrying until the socket accepts, QEMU creates it during start-up), reads the greeting and
     * negotiates capabilities.
     *
     * @param timeoutNanos deadline of the connection and of every later reply.
     */
    static Qmp connect(final Path socket, final long timeoutNanos, final ProcessHandle qemu) throws IOException
    {
        final long deadline = System.nanoTime() + timeoutNanos;
        while (true)
        {
            final SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            try
            {
                channel.connect(UnixDomainSocketAddress.of(socket));
                final Qmp qmp = new Qmp(channel, timeoutNanos);
                final Map<String, Object> greeting = qmp.next(qmp.replies, "the QMP greeting");
                if (!greeting.containsKey("QMP"))
                {
                    fail("not a QMP greeting: " + greeting);
                }
                qmp.execute("qmp_capabilities");
                return qmp;
            }
            catch (final IOException ex)
            {
                channel.close();
                if (System.nanoTime() - deadline > 0 || !qemu.isAlive())
                {
                    throw new IOException("QMP socket " + socket + " did not accept (QEMU alive: " + qemu.isAlive() +
                        ")", ex);
                }
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
            }
        }
    }

    /** Runs a command without arguments and returns its "return" value; an "error" reply fails the test. */
    Object execute(final String command)
    {
        return execute(command, null);
    }

    /** @param arguments a JSON object, or null for none. */
    Object execute(final String command, final String arguments)
    {
        final Map<String, Object> reply = send(command, arguments);
        if (!reply.containsKey("return"))
        {
            fail(command + " " + arguments + " failed: " + reply.get("error"));
        }
        return reply.get("return");
    }

    /** Runs an HMP command line through {@code human-monitor-command} and returns its output. */
    String hmp(final String commandLine)
    {
        return (String)execute("human-monitor-command", "{\"command-line\":" + quote(commandLine) + "}");
    }

    /** Waits for the next event called {@code name}, skipping others; fails at the deadline. */
    Map<String, Object> awaitEvent(final String name)
    {
        while (true)
        {
            final Map<String, Object> event = next(events, "event " + name);
            if (name.equals(event.get("event")))
            {
                return event;
            }
        }
    }

    /** Runs a command and returns the whole reply, "return" or "error". */
    Map<String, Object> send(final String command, final String arguments)
    {
        final String line = "{\"execute\":" + quote(command) +
            (arguments == null ? "" : ",\"arguments\":" + arguments) + "}\n";
        try
        {
            final ByteBuffer buffer = ByteBuffer.wrap(line.getBytes(StandardCharsets.UTF_8));
            while (buffer.hasRemaining())
            {
                channel.write(buffer);
            }
        }
        catch (final IOException ex)
        {
            throw new AssertionError("sending " + line.strip() + " failed", ex);
        }
        return next(replies, "the reply to " + line.strip());
    }

    private Map<String, Object> next(final BlockingQueue<Map<String, Object>> queue, final String what)
    {
        final Map<String, Object> message;
        try
        {
            message = queue.poll(timeoutNanos, TimeUnit.NANOSECONDS);
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for " + what, ex);
        }
        if (message == null)
        {
            return fail("no " + what + " within " + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms");
        }
        if (message == CLOSED)
        {
            queue.offer(CLOSED);
            return fail("QMP connection closed while waiting for " + what);
        }
        return message;
    }

    /** @return {@code text} as a JSON string literal. */
    static String quote(final String text)
    {
        try
        {
            return JSON.writeValueAsString(text);
        }
        catch (final JsonProcessingException ex)
        {
            throw new IllegalStateException(ex);
        }
    }

    @SuppressWarnings("unchecked")
    private void readLoop()
    {
        try (BufferedReader in = new BufferedReader(Channels.newReader(channel, StandardCharsets.UTF_8)))
        {
            String line;
            while ((line = in.readLine()) != null)
            {
                if (line.isBlank())
                {
                    continue;
                }
                final Map<String, Object> message = JSON.readValue(line, Map.class);
                (message.containsKey("event") ? events : replies).offer(message);
            }
        }
        catch (final IOException | RuntimeException ex)
        {
            // closed by close() or by QEMU's exit: waiters see CLOSED
        }
        replies.offer(CLOSED);
        events.offer(CLOSED);
    }

    @Override
    public void close() throws IOException
    {
        channel.close();
        try
        {
            reader.join(TimeUnit.NANOSECONDS.toMillis(timeoutNanos));
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
        }
    }
}
