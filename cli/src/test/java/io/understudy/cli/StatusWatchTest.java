package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.Errno;
import io.understudy.engine.replication.CheckpointReport;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The status-to-events mapping, driven by hand (doWork as the agent's invoker) over a status object the test
 * edits: which change gives which event, with which data, in which order.
 */
class StatusWatchTest
{
    private final LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
    private final ControlEvents events = new ControlEvents();
    private ObjectNode status = status("running", 0);

    StatusWatchTest()
    {
        events.subscribe(new EventSubscriber.Connection()
        {
            @Override
            public void writeLine(final String line)
            {
                lines.add(line);
            }

            @Override
            public void close()
            {
            }
        }).start();
    }

    private static ObjectNode status(final String state, final long epoch)
    {
        final ObjectNode node = ControlServer.JSON.createObjectNode().put("state", state).put("epoch", epoch);
        node.putNull("error");
        node.putObject("peer").put("link", "none").put("reason", "");
        return node;
    }

    /** The next events as "NAME data", waiting for the subscriber's writer thread. */
    private List<String> next(final int count) throws Exception
    {
        final List<String> next = new ArrayList<>();
        for (int i = 0; i < count; i++)
        {
            final String line = lines.poll(10, TimeUnit.SECONDS);
            if (line == null)
            {
                throw new AssertionError("only " + next + " arrived");
            }
            final JsonNode event = ControlServer.JSON.readTree(line);
            next.add(event.path("event").asText() + " " + event.path("data"));
        }
        return next;
    }

    private void assertNoMoreEvents() throws InterruptedException
    {
        assertEquals(null, lines.poll(100, TimeUnit.MILLISECONDS));
    }

    @Test
    void checkpointIsBracketedByStateChangesAroundItsReport() throws Exception
    {
        final StatusWatch watch = new StatusWatch(events, () -> status, null);
        assertEquals(0, watch.doWork()); // the baseline
        final CheckpointReport report = watch.checkpoint(() ->
        {
            // The engine says checkpointing only part of the time; the watch holds it for the whole call.
            assertEquals(0, watch.doWork());
            status = status("running", 1);
            assertEquals(0, watch.doWork());
            return new CheckpointReport(0, "", 1, 2000, 3000, 4000, 10_000);
        });
        assertEquals(1, report.epoch());
        assertEquals(List.of(
            "STATE_CHANGE {\"old\":\"running\",\"new\":\"checkpointing\",\"epoch\":0}",
            "CHECKPOINT {\"epoch\":1,\"ignored\":false,\"drain-us\":2,\"flush-us\":3,\"reset-us\":4,\"total-us\":10}",
            "STATE_CHANGE {\"old\":\"checkpointing\",\"new\":\"running\",\"epoch\":1}"), next(3));

        watch.checkpoint(() -> new CheckpointReport(-Errno.ETIMEDOUT, "the peer did not answer", 1, 0, 0, 0,
            5_000_000));
        assertEquals(List.of(
            "STATE_CHANGE {\"old\":\"running\",\"new\":\"checkpointing\",\"epoch\":1}",
            "CHECKPOINT_FAILED {\"epoch\":1,\"errno\":\"ETIMEDOUT\",\"reason\":\"the peer did not answer\"," +
                "\"total-us\":5000}",
            "STATE_CHANGE {\"old\":\"checkpointing\",\"new\":\"running\",\"epoch\":1}"), next(3));
        assertNoMoreEvents();
    }

    @Test
    void peerLossGoodbyeErrorAndFailoverBecomeEvents() throws Exception
    {
        final StatusWatch watch = new StatusWatch(events, () -> status, null);
        status.putObject("peer").put("link", "up").put("reason", "").put("address", "127.0.0.1:4000");
        watch.doWork();
        status.putObject("peer").put("link", "lost").put("reason", "no heartbeat for 1500 ms")
            .put("address", "127.0.0.1:4000");
        status.putObject("error").put("errno", "ETIMEDOUT").put("reason", "control link: no heartbeat");
        status.put("state", "degraded");
        assertEquals(3, watch.doWork());
        assertEquals(0, watch.doWork());
        assertEquals(List.of(
            "REPLICATION_ERROR {\"errno\":\"ETIMEDOUT\",\"reason\":\"control link: no heartbeat\"}",
            "PEER_LOST {\"address\":\"127.0.0.1:4000\",\"reason\":\"no heartbeat for 1500 ms\"}",
            "STATE_CHANGE {\"old\":\"running\",\"new\":\"degraded\",\"epoch\":0}"), next(3));

        status.putObject("peer").put("link", "peer-goodbye").put("reason", "the secondary took over")
            .put("address", "127.0.0.1:4000");
        assertEquals(1, watch.doWork());
        assertEquals(List.of("PEER_GOODBYE {\"address\":\"127.0.0.1:4000\",\"reason\":\"the secondary took over\"}"),
            next(1));

        final ObjectNode reply = watch.failover(() ->
        {
            status.put("state", "failover").putObject("commit").put("done-bytes", 65536).put("total-bytes", 131072);
            watch.doWork();
            status.put("state", "done").putNull("error");
            return ControlServer.JSON.createObjectNode().put("ignored", false).put("committed-bytes", 131072);
        });
        assertEquals("{\"ignored\":false,\"committed-bytes\":131072}", reply.toString());
        assertEquals(List.of(
            "STATE_CHANGE {\"old\":\"degraded\",\"new\":\"failover\",\"epoch\":0}",
            "FAILOVER_PROGRESS {\"done-bytes\":65536,\"total-bytes\":131072}",
            "STATE_CHANGE {\"old\":\"failover\",\"new\":\"done\",\"epoch\":0}",
            "FAILOVER_DONE {\"ignored\":false,\"committed-bytes\":131072}"), next(4));

        final ControlException refused = assertThrows(ControlException.class, () -> watch.failover(() ->
        {
            throw new ControlException(ControlException.GENERIC, "failover failed: EIO: not running");
        }));
        assertEquals("failover failed: EIO: not running", refused.getMessage());
        assertEquals(List.of("FAILOVER_FAILED {\"class\":\"GenericError\",\"desc\":\"failover failed: EIO: not " +
            "running\"}"), next(1));
        assertNoMoreEvents();
    }

    @Test
    void aDiskOfSeveralIsNamedInEveryEventOfItsWatch() throws Exception
    {
        final StatusWatch watch = new StatusWatch(events, () -> status, "data");
        assertEquals(0, watch.doWork());
        status = status("degraded", 0);
        status.putObject("error").put("errno", "EIO").put("reason", "forwarded write failed");
        assertEquals(2, watch.doWork());
        assertEquals(List.of(
            "REPLICATION_ERROR {\"errno\":\"EIO\",\"reason\":\"forwarded write failed\",\"disk\":\"data\"}",
            "STATE_CHANGE {\"old\":\"running\",\"new\":\"degraded\",\"epoch\":0,\"disk\":\"data\"}"), next(2));
        assertNoMoreEvents();
    }
}
