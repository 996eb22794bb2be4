package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Events on a real control socket: subscription, the event line's shape, replies and events on one connection,
 * SHUTDOWN at close, and a subscriber that stops reading being dropped without ever blocking the emitter.
 */
@Timeout(value = 2, unit = TimeUnit.MINUTES)
class ControlEventsTest
{
    /** Big enough that a few hundred lines fill a unix socket's buffer. */
    private static final String PADDING = "x".repeat(2000);

    @TempDir
    Path dir;

    private static ControlServer.Handler echo()
    {
        return (command, arguments) -> ControlServer.JSON.createObjectNode().put("command", command);
    }

    private static void send(final SocketChannel channel, final String line) throws IOException
    {
        final OutputStream out = Channels.newOutputStream(channel);
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static SocketChannel subscribe(final Path path, final BufferedReader[] reader) throws IOException
    {
        final SocketChannel channel = ControlClient.connect(path);
        reader[0] = ControlClient.reader(channel);
        send(channel, "{\"execute\": \"subscribe\"}");
        return channel;
    }

    @Test
    void subscriberGetsTimestampedEventsBetweenItsRepliesAndShutdownAtClose() throws Exception
    {
        final Path path = dir.resolve("c.ctl");
        final ControlEvents events = new ControlEvents(8, EventSubscriber.GRACE_MILLIS);
        final BufferedReader[] in = new BufferedReader[1];
        try (ControlServer server = new ControlServer(path, echo(), events);
            SocketChannel channel = subscribe(path, in))
        {
            assertEquals("{\"return\":{\"queue-capacity\":8}}", in[0].readLine());
            // Not subscribed: a one-shot client reads its reply and nothing else.
            ControlClient.execute(path, "status", ControlServer.JSON.createObjectNode());

            final long before = System.currentTimeMillis();
            events.emit("STATE_CHANGE", ControlServer.JSON.createObjectNode().put("old", "running")
                .put("new", "checkpointing").put("epoch", 0));
            final JsonNode event = ControlServer.JSON.readTree(in[0].readLine());
            assertEquals("STATE_CHANGE", event.path("event").asText());
            assertEquals("{\"old\":\"running\",\"new\":\"checkpointing\",\"epoch\":0}", event.path("data").toString());
            final long millis = event.path("timestamp").path("seconds").asLong() * 1000 +
                event.path("timestamp").path("microseconds").asLong() / 1000;
            assertTrue(millis >= before - 1 && millis <= System.currentTimeMillis() + 1, event.toString());
            assertTrue(event.path("timestamp").path("microseconds").asLong() < 1_000_000, event.toString());

            send(channel, "{\"execute\": \"checkpoint\"}");
            assertEquals("{\"return\":{\"command\":\"checkpoint\"}}", in[0].readLine());
            send(channel, "{\"execute\": \"subscribe\"}");
            assertEquals("{\"return\":{\"queue-capacity\":8}}", in[0].readLine());
            events.emit("CHECKPOINT", ControlServer.JSON.createObjectNode().put("epoch", 1));
            // One subscription, however often asked for: the event arrives once.
            assertEquals("CHECKPOINT", ControlServer.JSON.readTree(in[0].readLine()).path("event").asText());

            server.close();
            assertEquals(ControlEvents.SHUTDOWN, ControlServer.JSON.readTree(in[0].readLine()).path("event").asText());
            assertNull(in[0].readLine());
        }
    }

    @Test
    void subscriberThatStopsReadingIsDroppedWithoutBlockingTheDaemon() throws Exception
    {
        final Path path = dir.resolve("c.ctl");
        // A grace period longer than the test: the stalled client always gets its overflow notice.
        final ControlEvents events = new ControlEvents(4, TimeUnit.MINUTES.toMillis(5));
        final BufferedReader[] stalled = new BufferedReader[1];
        final BufferedReader[] reading = new BufferedReader[1];
        try (ControlServer server = new ControlServer(path, echo(), events);
            SocketChannel _ = subscribe(path, stalled);
            SocketChannel _ = subscribe(path, reading))
        {
            assertTrue(stalled[0].readLine().startsWith("{\"return\""));
            assertTrue(reading[0].readLine().startsWith("{\"return\""));
            final int total = 400;
            final List<Long> emitNanos = new ArrayList<>();
            int readByTheOther = 0;
            for (int i = 0; i < total; i++)
            {
                final long start = System.nanoTime();
                events.emit("TEST", ControlServer.JSON.createObjectNode().put("n", i).put("padding", PADDING));
                emitNanos.add(System.nanoTime() - start);
                // The other subscriber keeps up, one event at a time, and must see every one in order.
                final JsonNode event = ControlServer.JSON.readTree(reading[0].readLine());
                assertEquals(i, event.path("data").path("n").asInt(), event.toString());
                readByTheOther++;
            }
            final long slowestMillis = TimeUnit.NANOSECONDS.toMillis(emitNanos.stream().mapToLong(n -> n).max()
                .orElseThrow());
            System.out.printf("emit with a stalled subscriber: %d events, slowest %d ms%n", total, slowestMillis);
            // Blocking would hang the loop for good (the stalled client reads only after it); the bound is slack for
            // a loaded machine's scheduling pauses.
            assertTrue(slowestMillis < 2000, "an emit waited " + slowestMillis + " ms for a stalled subscriber");
            assertEquals(total, readByTheOther);
            // Commands on the daemon are answered while the stalled client still holds its connection.
            assertEquals("status", ControlClient.execute(path, "status", ControlServer.JSON.createObjectNode())
                .path("command").asText());

            // The stalled client finally reads: what its socket buffered, the overflow notice, then end of stream.
            int received = 0;
            JsonNode last = null;
            String line;
            while ((line = stalled[0].readLine()) != null)
            {
                last = ControlServer.JSON.readTree(line);
                if ("TEST".equals(last.path("event").asText()))
                {
                    assertEquals(received, last.path("data").path("n").asInt(), "events in order, none skipped");
                    received++;
                }
            }
            System.out.printf("stalled subscriber received %d of %d events before it was dropped%n", received, total);
            assertTrue(received < total, "received " + received);
            assertEquals(ControlEvents.OVERFLOW, last.path("event").asText(), last.toString());
            assertEquals(4, last.path("data").path("queue-capacity").asInt(), last.toString());
        }
    }

    @Test
    void subscriberThatNeverReadsAgainIsClosedAfterTheGracePeriod() throws Exception
    {
        final Path path = dir.resolve("c.ctl");
        final long graceMillis = 200;
        final ControlEvents events = new ControlEvents(1000, graceMillis);
        final BufferedReader[] stalled = new BufferedReader[1];
        try (ControlServer server = new ControlServer(path, echo(), events);
            SocketChannel _ = subscribe(path, stalled))
        {
            assertTrue(stalled[0].readLine().startsWith("{\"return\""));
            // Paced, so the queue can fill only while the writer is blocked in a write to the full socket: the
            // writer empties a queue it can write out in microseconds.
            for (int i = 0; i < 1500; i++)
            {
                events.emit("TEST", ControlServer.JSON.createObjectNode().put("n", i).put("padding", PADDING));
                Thread.sleep(1);
            }
            // Past the grace period the connection is closed under the blocked writer: no overflow line fits.
            Thread.sleep(graceMillis + 1000);
            String line;
            String last = null;
            while ((line = stalled[0].readLine()) != null)
            {
                last = line;
            }
            assertTrue(last != null && last.contains("\"event\":\"TEST\""), last);
        }
    }

    @Test
    void eventsClientPrintsOneLinePerEventWithUtcMicroseconds() throws Exception
    {
        final JsonNode event = ControlServer.JSON.readTree("{\"event\":\"PEER_LOST\",\"data\":{" +
            "\"address\":\"/127.0.0.1:4000\",\"reason\":\"the peer closed the control link\",\"n\":3,\"error\":null}," +
            "\"timestamp\":{\"seconds\":1795342545,\"microseconds\":842616}}");
        assertEquals("2026-11-22T10:15:45.842616Z PEER_LOST address=/127.0.0.1:4000 reason=\"the peer closed the " +
            "control link\" n=3 error=null", EventsCommand.text(event));
    }
}
