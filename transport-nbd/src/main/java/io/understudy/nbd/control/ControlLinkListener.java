package io.understudy.nbd.control;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.function.LongSupplier;

/**
 * The secondary's end: accepts primaries on TCP, runs the handshake (a primary that does not send HELLO within
 * the handshake timeout is dropped) and hands each accepted link to its {@link Acceptor}. One connection at a
 * time is handshaken, on the accept thread; an established link runs on its own threads.
 */
public final class ControlLinkListener implements AutoCloseable
{
    /** Decides about a primary's HELLO; called on the accept thread. */
    public interface Acceptor
    {
        /** @return null to accept, else why not. */
        Refusal check(Hello hello);

        /** The listener for a link about to start. */
        ControlLink.Listener listenerFor(Hello hello);

        /** The link is up (after HELLO_ACK was sent). */
        void onLink(ControlLink link, Hello hello);
    }

    /** A named refusal: {@code code} is one of {@code ControlProtocol.REFUSE_*}. */
    public record Refusal(short code, String reason)
    {
    }

    private final ServerSocket server;
    private final Acceptor acceptor;
    private final LongSupplier epoch;
    private final int handshakeTimeoutMillis;
    private final Thread acceptThread;
    private volatile boolean closed;

    /**
     * Binds {@code host:port} (port 0: any free port, see {@link #port()}) and starts accepting.
     */
    public ControlLinkListener(
        final String host, final int port, final int handshakeTimeoutMillis, final LongSupplier epoch,
        final Acceptor acceptor) throws IOException
    {
        this.server = new ServerSocket();
        this.server.setReuseAddress(true);
        this.server.bind(new InetSocketAddress(host, port));
        this.acceptor = acceptor;
        this.epoch = epoch;
        this.handshakeTimeoutMillis = handshakeTimeoutMillis;
        this.acceptThread = Thread.ofPlatform().daemon(true).name("control-link-accept").start(this::acceptLoop);
    }

    public int port()
    {
        return server.getLocalPort();
    }

    @Override
    public void close()
    {
        closed = true;
        try
        {
            server.close();
            acceptThread.join(5000);
        }
        catch (final IOException ignored)
        {
            // Nothing to report on closing a listener.
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
            final Socket socket;
            try
            {
                socket = server.accept();
            }
            catch (final IOException ex)
            {
                if (closed)
                {
                    return;
                }
                continue;
            }
            try
            {
                handshake(socket);
            }
            catch (final IOException | RuntimeException ex)
            {
                closeQuietly(socket);
            }
        }
    }

    private void handshake(final Socket socket) throws IOException
    {
        socket.setTcpNoDelay(true);
        socket.setSoTimeout(handshakeTimeoutMillis);
        final Frames frames = new Frames(socket);
        try
        {
            frames.read();
        }
        catch (final Frames.ProtocolException ex)
        {
            refuse(frames, socket, new Refusal(ex.getMessage().startsWith("unsupported version") ?
                ControlProtocol.REFUSE_VERSION : ControlProtocol.REFUSE_PROTOCOL, ex.getMessage()));
            return;
        }
        if (frames.type() != ControlProtocol.HELLO || frames.payload().remaining() < Hello.LENGTH)
        {
            refuse(frames, socket, new Refusal(ControlProtocol.REFUSE_PROTOCOL, "expected HELLO, got " +
                ControlProtocol.typeName(frames.type())));
            return;
        }
        final Hello hello = Hello.decode(frames.payload());
        if (hello.heartbeatIntervalMillis() <= 0 || hello.heartbeatTimeoutMillis() <= hello.heartbeatIntervalMillis())
        {
            refuse(frames, socket, new Refusal(ControlProtocol.REFUSE_PROTOCOL, "heartbeat timeout (" +
                hello.heartbeatTimeoutMillis() + " ms) must exceed the interval (" + hello.heartbeatIntervalMillis() +
                " ms)"));
            return;
        }
        final Refusal refusal = acceptor.check(hello);
        if (refusal != null)
        {
            refuse(frames, socket, refusal);
            return;
        }
        final ControlLink link = new ControlLink(socket, frames, acceptor.listenerFor(hello), epoch,
            hello.heartbeatIntervalMillis(), hello.heartbeatTimeoutMillis());
        synchronized (frames)
        {
            frames.begin(ControlProtocol.HELLO_ACK, frames.correlation()).putLong(hello.generationId())
                .putLong(epoch.getAsLong());
            frames.send();
        }
        link.start();
        acceptor.onLink(link, hello);
    }

    private static void refuse(final Frames frames, final Socket socket, final Refusal refusal) throws IOException
    {
        synchronized (frames)
        {
            final ByteBuffer payload = frames.begin(ControlProtocol.REFUSE, 0).putShort(refusal.code());
            Frames.putString(payload, refusal.reason());
            frames.send();
        }
        closeQuietly(socket);
    }

    private static void closeQuietly(final Socket socket)
    {
        try
        {
            socket.close();
        }
        catch (final IOException ignored)
        {
            // The handshake failed already; the socket is of no further use.
        }
    }
}
