package io.understudy.cli;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * One control-socket connection that asked for events: a bounded queue of ready JSON lines and a virtual thread
 * that writes them to the connection. The daemon only ever {@link #offer}s, which never blocks, so a client that
 * stops reading fills its own socket buffer and then its own queue, and nothing else. A subscriber that ends
 * (its queue overflowed, or the daemon is stopping) gets one last line and is then closed; if it does not take
 * even that line within the grace period ({@link #GRACE_MILLIS} in the daemons), the connection is closed under
 * it.
 */
final class EventSubscriber
{
    /** The connection's write side, shared with the replies to its requests (each line is written whole). */
    interface Connection
    {
        void writeLine(String line) throws IOException;

        void close();
    }

    /** How long an ending subscriber may take to accept its last line before its connection is closed. */
    static final long GRACE_MILLIS = 1000;

    private final Connection connection;
    private final ArrayBlockingQueue<String> queue;
    private final long graceMillis;
    private final Thread writer;
    /** The line after which the writer closes the connection; volatile: set by an emitter, read by the writer. */
    private volatile String last;

    EventSubscriber(final Connection connection, final int capacity, final long graceMillis)
    {
        this.connection = connection;
        this.queue = new ArrayBlockingQueue<>(capacity);
        this.graceMillis = graceMillis;
        this.writer = Thread.ofVirtual().name("control-events").unstarted(this::writeLoop);
    }

    /** Starts delivering, once the reply to the subscription was written; events emitted before wait queued. */
    void start()
    {
        writer.start();
    }

    /**
     * Queues one event line; never blocks. Callers serialise offers and {@link #end} (ControlEvents' lock), so
     * every subscriber sees the events in the same order.
     *
     * @return false if the queue is full: the caller ends this subscriber.
     */
    boolean offer(final String line)
    {
        return last == null && queue.offer(line);
    }

    /**
     * Makes {@code line} the last one this subscriber gets, then closes it.
     *
     * @param discardQueued true to drop what is still queued (an overflow: the client is behind anyway), false to
     *                      deliver it first (a shutdown). Without room for the last line the connection just closes.
     */
    void end(final String line, final boolean discardQueued)
    {
        if (last != null)
        {
            return;
        }
        if (discardQueued)
        {
            queue.clear();
        }
        last = line;
        if (!queue.offer(line))
        {
            writer.interrupt();
        }
        Thread.ofVirtual().name("control-events-grace").start(this::closeAfterGrace);
    }

    /** Ends the subscription at once, when the client went away: nothing more is written. */
    void cancel()
    {
        writer.interrupt();
    }

    /** Waits until the writer has ended (and closed the connection), or until {@code deadlineNanos}. */
    void awaitEnd(final long deadlineNanos)
    {
        try
        {
            writer.join(Duration.ofNanos(Math.max(1, deadlineNanos - System.nanoTime())));
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    private void writeLoop()
    {
        try
        {
            while (true)
            {
                final String line = queue.take();
                connection.writeLine(line);
                // Identity, not equality: only the very line end() queued ends the loop.
                if (line == last)
                {
                    return;
                }
            }
        }
        catch (final IOException | InterruptedException ignored)
        {
            // The client went away, or the subscription was cancelled: nothing is left to deliver.
        }
        finally
        {
            connection.close();
        }
    }

    /** A client that stopped reading blocks the writer in a socket write: closing the connection frees it. */
    private void closeAfterGrace()
    {
        try
        {
            if (!writer.join(Duration.ofMillis(graceMillis)))
            {
                connection.close();
                writer.interrupt();
                writer.join(Duration.ofMillis(graceMillis));
            }
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }
}
