package io.understudy.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The control socket's asynchronous events, QMP style: a connection that sent {@code {"execute": "subscribe"}}
 * receives, between the replies to its own requests, one line per event:
 * <pre>
 *   {"event": "STATE_CHANGE", "data": {"old": "running", "new": "checkpointing", "epoch": 3},
 *    "timestamp": {"seconds": 1795860000, "microseconds": 123456}}
 * </pre>
 * Emitting never blocks the daemon: each subscriber has a bounded queue ({@link #QUEUE_CAPACITY} lines), and a
 * subscriber whose queue is full is dropped with a final {@link #OVERFLOW} event rather than waited for. Closing
 * (the daemon stops) sends {@link #SHUTDOWN} to everyone still subscribed. The event names and their data are
 * documented in docs/control.md.
 */
final class ControlEvents implements AutoCloseable
{
    /** Events a subscriber may fall behind by before it is dropped: minutes of a busy pair's events. */
    static final int QUEUE_CAPACITY = 256;

    /** The last event of a subscriber that fell {@link #QUEUE_CAPACITY} events behind. */
    static final String OVERFLOW = "EVENTS_OVERFLOW";

    /** The last event of every subscriber when the daemon closes its control socket. */
    static final String SHUTDOWN = "SHUTDOWN";

    private final int capacity;
    private final long graceMillis;
    /** Guarded by this: emit, subscribe and close serialise on it, so all subscribers see one order. */
    private final List<EventSubscriber> subscribers = new ArrayList<>();
    private boolean closed;

    ControlEvents()
    {
        this(QUEUE_CAPACITY, EventSubscriber.GRACE_MILLIS);
    }

    /**
     * @param capacity    per-subscriber queue length (tests use small ones to provoke an overflow).
     * @param graceMillis how long an ending subscriber may take to accept its last line.
     */
    ControlEvents(final int capacity, final long graceMillis)
    {
        this.capacity = capacity;
        this.graceMillis = graceMillis;
    }

    int capacity()
    {
        return capacity;
    }

    /**
     * @return the new subscriber: it receives every event emitted from now on, or null if the daemon is closing.
     */
    synchronized EventSubscriber subscribe(final EventSubscriber.Connection connection)
    {
        if (closed)
        {
            return null;
        }
        final EventSubscriber subscriber = new EventSubscriber(connection, capacity, graceMillis);
        subscribers.add(subscriber);
        return subscriber;
    }

    /** The client went away: nothing more is queued for it. */
    synchronized void unsubscribe(final EventSubscriber subscriber)
    {
        subscribers.remove(subscriber);
        subscriber.cancel();
    }

    /** Queues the event for every subscriber; never blocks. {@code data} is not kept. */
    synchronized void emit(final String name, final ObjectNode data)
    {
        if (subscribers.isEmpty())
        {
            return;
        }
        final String line = line(name, data);
        for (int i = subscribers.size() - 1; i >= 0; i--)
        {
            final EventSubscriber subscriber = subscribers.get(i);
            if (!subscriber.offer(line))
            {
                subscribers.remove(i);
                subscriber.end(line(OVERFLOW, ControlServer.JSON.createObjectNode()
                    .put("queue-capacity", capacity)
                    .put("reason", "this subscriber fell " + capacity + " events behind: its queued events were " +
                        "dropped and the daemon closes the connection; subscribe again and query status")), true);
            }
        }
    }

    /**
     * Sends {@link #SHUTDOWN} after what is still queued and closes every subscriber's connection, waiting at
     * most the grace period in all for the lines to be written: the process exits next.
     */
    @Override
    public void close()
    {
        final List<EventSubscriber> ending;
        synchronized (this)
        {
            if (closed)
            {
                return;
            }
            closed = true;
            final String shutdown = line(SHUTDOWN, ControlServer.JSON.createObjectNode());
            subscribers.forEach(subscriber -> subscriber.end(shutdown, false));
            ending = List.copyOf(subscribers);
            subscribers.clear();
        }
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(graceMillis);
        for (final EventSubscriber subscriber : ending)
        {
            subscriber.awaitEnd(deadline);
        }
    }

    private static String line(final String name, final ObjectNode data)
    {
        final Instant now = Instant.now();
        final ObjectNode event = ControlServer.JSON.createObjectNode().put("event", name);
        event.set("data", data);
        event.putObject("timestamp").put("seconds", now.getEpochSecond()).put("microseconds", now.getNano() / 1000);
        try
        {
            return ControlServer.JSON.writeValueAsString(event);
        }
        catch (final JsonProcessingException e)
        {
            // A tree of plain nodes always serialises; reaching this is a bug in the event's construction.
            throw new IllegalStateException(e);
        }
    }
}
