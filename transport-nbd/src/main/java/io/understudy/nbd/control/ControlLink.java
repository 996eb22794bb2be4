package io.understudy.nbd.control;

import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerRefusedException;
import io.understudy.engine.link.RefusalCode;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;

/**
 * One established control link over TCP (after HELLO / HELLO_ACK), the same object on both sides: a reader thread
 * that answers CHECKPOINT_PREPARE (secondary), completes checkpoint requests (primary) and watches the peer's
 * heartbeats through the socket's read timeout, and a heartbeat thread that sends HEARTBEAT every interval.
 * <p>
 * Life cycle: {@code UP -> LOST} (heartbeat timeout, connection closed, protocol error: the listener hears
 * {@link Listener#onLost} once), {@code UP -> GONE} (the peer said GOODBYE: {@link Listener#onGoodbye}), or
 * {@code UP -> CLOSED} (this side said goodbye or closed). A link never comes back: a new one needs a new
 * handshake, so nothing resumes silently.
 * <p>
 * Control traffic only (a few frames a second): blocking sockets and a thread per direction are the simple,
 * measurable choice; nothing here is on the I/O path.
 */
public final class ControlLink implements PeerControl
{
    private static final int ERRNO_ETIMEDOUT = 110;
    private static final int ERRNO_EPIPE = 32;

    private final Socket socket;
    private final Frames frames;
    private final Listener listener;
    private final LongSupplier epoch;
    private final int intervalMillis;
    private final int timeoutMillis;
    private final String peerName;
    private final AtomicReference<State> state = new AtomicReference<>(State.UP);
    private final AtomicLong correlations = new AtomicLong();
    private final Map<Long, CompletableFuture<CheckpointAnswer>> pending = new ConcurrentHashMap<>();
    private volatile String reason = "";
    private volatile long lastHeardNanos = System.nanoTime();
    private Thread reader;
    private Thread heartbeat;

    ControlLink(
        final Socket socket, final Frames frames, final Listener listener, final LongSupplier epoch,
        final int intervalMillis, final int timeoutMillis) throws IOException
    {
        this.socket = socket;
        this.frames = frames;
        this.listener = listener;
        this.epoch = epoch;
        this.intervalMillis = intervalMillis;
        this.timeoutMillis = timeoutMillis;
        this.peerName = String.valueOf(socket.getRemoteSocketAddress());
        socket.setSoTimeout(timeoutMillis);
    }

    /**
     * Primary: connects, sends HELLO and waits for the answer.
     *
     * @param timeoutMillis deadline of the connect and of the handshake each.
     * @throws PeerRefusedException if the secondary refused, naming why.
     * @throws IOException             if nobody answers or the answer is not the protocol.
     */
    public static ControlLink connect(
        final InetSocketAddress address, final Hello hello, final int timeoutMillis, final LongSupplier epoch,
        final Listener listener) throws IOException
    {
        final Socket socket = new Socket();
        try
        {
            socket.connect(address, timeoutMillis);
            socket.setTcpNoDelay(true);
            socket.setSoTimeout(timeoutMillis);
            final Frames frames = new Frames(socket);
            synchronized (frames)
            {
                HelloCodec.encode(hello, frames.begin(ControlProtocol.HELLO, 0));
                frames.send();
            }
            frames.read();
            final ByteBuffer payload = frames.payload();
            switch (frames.type())
            {
                case ControlProtocol.HELLO_ACK ->
                {
                    final long generation = payload.getLong();
                    if (generation != hello.generationId())
                    {
                        throw new Frames.ProtocolException("HELLO_ACK for generation " + generation);
                    }
                    final ControlLink link = new ControlLink(socket, frames, listener, epoch,
                        hello.heartbeatIntervalMillis(), hello.heartbeatTimeoutMillis());
                    link.start();
                    return link;
                }
                case ControlProtocol.REFUSE ->
                {
                    final int code = payload.getShort();
                    throw new PeerRefusedException(RefusalCode.fromWireCode(code), Frames.getString(payload));
                }
                default -> throw new Frames.ProtocolException("expected HELLO_ACK or REFUSE, got " +
                    ControlProtocol.typeName(frames.type()));
            }
        }
        catch (final IOException | RuntimeException ex)
        {
            socket.close();
            throw ex;
        }
    }

    void start()
    {
        reader = Thread.ofPlatform().daemon(true).name("control-link-rx").start(this::readLoop);
        heartbeat = Thread.ofPlatform().daemon(true).name("control-link-heartbeat").start(this::heartbeatLoop);
    }

    @Override
    public State state()
    {
        return state.get();
    }

    /** @return why the link is no longer up (empty while up). */
    @Override
    public String reason()
    {
        return reason;
    }

    /** @return milliseconds since the last frame from the peer. */
    @Override
    public long silenceMillis()
    {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastHeardNanos);
    }

    @Override
    public String peerName()
    {
        return peerName;
    }

    @Override
    public int heartbeatIntervalMillis()
    {
        return intervalMillis;
    }

    @Override
    public int heartbeatTimeoutMillis()
    {
        return timeoutMillis;
    }

    /**
     * Primary: runs the secondary's part of a checkpoint and waits for its answer until {@code deadlineNanos}.
     *
     * @return the answer; result -ETIMEDOUT at the deadline, -EPIPE if the link is not up.
     */
    @Override
    public CheckpointAnswer checkpointPeer(final long deadlineNanos, final long primaryEpoch)
    {
        if (state.get() != State.UP)
        {
            return new CheckpointAnswer(-ERRNO_EPIPE, -1, "the control link is " + state.get().label());
        }
        final long correlation = correlations.incrementAndGet();
        final CompletableFuture<CheckpointAnswer> answer = new CompletableFuture<>();
        pending.put(correlation, answer);
        try
        {
            if (state.get() != State.UP)
            {
                // Lost between the check above and the put: failPending may have missed this request.
                return new CheckpointAnswer(-ERRNO_EPIPE, -1, "the control link is " + state.get().label());
            }
            synchronized (frames)
            {
                frames.begin(ControlProtocol.CHECKPOINT_PREPARE, correlation)
                    .putLong(Math.max(0, deadlineNanos - System.nanoTime())).putLong(primaryEpoch);
                frames.send();
            }
            return answer.get(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
        }
        catch (final IOException ex)
        {
            lost("sending CHECKPOINT_PREPARE failed: " + ex.getMessage());
            return new CheckpointAnswer(-ERRNO_EPIPE, -1, "the control link broke: " + ex.getMessage());
        }
        catch (final TimeoutException ex)
        {
            return new CheckpointAnswer(-ERRNO_ETIMEDOUT, -1, "the secondary did not answer before the deadline");
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
            return new CheckpointAnswer(-ERRNO_ETIMEDOUT, -1, "interrupted");
        }
        catch (final ExecutionException ex)
        {
            return new CheckpointAnswer(-ERRNO_EPIPE, -1, ex.getCause().getMessage());
        }
        finally
        {
            pending.remove(correlation);
        }
    }

    /** Ends the link in order: sends GOODBYE (best effort) and closes. */
    @Override
    public void goodbye(final boolean failover, final String why)
    {
        if (!state.compareAndSet(State.UP, State.CLOSED))
        {
            return;
        }
        reason = "this side said goodbye: " + why;
        try
        {
            synchronized (frames)
            {
                Frames.putString(frames.begin(ControlProtocol.GOODBYE, 0).put((byte)(failover ? 1 : 0)), why);
                frames.send();
            }
        }
        catch (final IOException ignored)
        {
            // The peer is gone already; closing is all that is left.
        }
        shutdown();
    }

    @Override
    public void close()
    {
        goodbye(false, "closing");
        shutdown();
    }

    private void shutdown()
    {
        try
        {
            socket.close();
        }
        catch (final IOException ignored)
        {
            // Closing a broken socket has nothing to report.
        }
        failPending();
        for (final Thread thread : new Thread[]{reader, heartbeat})
        {
            if (thread != null && thread != Thread.currentThread())
            {
                thread.interrupt();
                try
                {
                    thread.join(TimeUnit.SECONDS.toMillis(5));
                }
                catch (final InterruptedException e)
                {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    private void readLoop()
    {
        try
        {
            while (state.get() == State.UP)
            {
                frames.read();
                lastHeardNanos = System.nanoTime();
                final ByteBuffer payload = frames.payload();
                switch (frames.type())
                {
                    case ControlProtocol.HEARTBEAT ->
                    {
                    }
                    case ControlProtocol.CHECKPOINT_PREPARE ->
                    {
                        final long correlation = frames.correlation();
                        final long deadline = System.nanoTime() + payload.getLong();
                        final CheckpointAnswer answer = listener.onCheckpointPrepare(deadline, payload.getLong());
                        synchronized (frames)
                        {
                            Frames.putString(frames.begin(ControlProtocol.CHECKPOINT_DONE, correlation)
                                .putInt(answer.result()).putLong(answer.epoch()), answer.reason());
                            frames.send();
                        }
                    }
                    case ControlProtocol.CHECKPOINT_DONE ->
                    {
                        final CompletableFuture<CheckpointAnswer> answer = pending.get(frames.correlation());
                        final int result = payload.getInt();
                        final long peerEpoch = payload.getLong();
                        final String text = Frames.getString(payload);
                        if (answer != null)
                        {
                            answer.complete(new CheckpointAnswer(result, peerEpoch, text));
                        }
                    }
                    case ControlProtocol.GOODBYE ->
                    {
                        final boolean failover = payload.get() != 0;
                        final String text = Frames.getString(payload);
                        if (state.compareAndSet(State.UP, State.GONE))
                        {
                            reason = "the peer said goodbye" + (failover ? " (failover)" : "") + ": " + text;
                            shutdown();
                            listener.onGoodbye(failover, text);
                        }
                        return;
                    }
                    default -> throw new Frames.ProtocolException("unexpected " +
                        ControlProtocol.typeName(frames.type()));
                }
            }
        }
        catch (final SocketTimeoutException ex)
        {
            lost("no heartbeat from " + peerName + " for " + timeoutMillis + " ms");
        }
        catch (final EOFException ex)
        {
            lost("the peer " + peerName + " closed the control link");
        }
        catch (final IOException | RuntimeException ex)
        {
            lost("control link to " + peerName + " failed: " + ex.getMessage());
        }
    }

    private void heartbeatLoop()
    {
        try
        {
            while (state.get() == State.UP)
            {
                synchronized (frames)
                {
                    frames.begin(ControlProtocol.HEARTBEAT, 0).putLong(epoch.getAsLong());
                    frames.send();
                }
                Thread.sleep(intervalMillis);
            }
        }
        catch (final InterruptedException ignored)
        {
            // Closing.
        }
        catch (final IOException ex)
        {
            lost("sending a heartbeat to " + peerName + " failed: " + ex.getMessage());
        }
    }

    private void lost(final String why)
    {
        if (state.compareAndSet(State.UP, State.LOST))
        {
            reason = why;
            // On its own thread: shutdown joins the reader and the heartbeat thread, one of which is us.
            Thread.ofPlatform().daemon(true).name("control-link-close").start(() ->
            {
                shutdown();
                // Reported after the socket is closed, so the owner acts on a link that is surely down.
                listener.onLost(why);
            });
        }
    }

    private void failPending()
    {
        for (final CompletableFuture<CheckpointAnswer> answer : pending.values())
        {
            answer.completeExceptionally(new IOException("the control link is " + state.get().label() + ": " +
                reason));
        }
    }
}
