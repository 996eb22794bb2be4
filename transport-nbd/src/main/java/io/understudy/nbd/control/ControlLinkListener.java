package io.understudy.nbd.control;

import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.LinkAcceptor.Refusal;
import io.understudy.engine.link.RefusalCode;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.function.LongSupplier;

/**
 * The secondary's end: accepts primaries on TCP, runs the handshake (a primary that does not send HELLO within
 * the handshake timeout is dropped) and hands each accepted link to its {@link LinkAcceptor} (called on the accept thread). One connection at a
 * time is handshaken, on the accept thread; an established link runs on its own threads.
 */
public final class ControlLinkListener implements AutoCloseable
{
    private final ServerSocket server;
    private final LinkAcceptor acceptor;
    private final LongSupplier epoch;
    private final int handshakeTimeoutMillis;
    private final Thread acceptThread;
    private volatile boolean closed;

    /**
     * Binds {@code host:port} (port 0: any free port, see {@link #port()}) and starts accepting.
     */
    public ControlLinkListener(
        final String host, final int port, final int handshakeTimeoutMillis, final LongSupplier epoch,
        final LinkAcceptor acceptor) throws IOException
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
                RefusalCode.VERSION : RefusalCode.PROTOCOL, ex.getMessage()));
            return;
        }
        if (frames.type() != ControlProtocol.HELLO || frames.payload().remaining() < HelloCodec.LENGTH)
        {
            refuse(frames, socket, new Refusal(RefusalCode.PROTOCOL, "expected HELLO, got " +
                ControlProtocol.typeName(frames.type())));
            return;
        }
        final Hello hello = HelloCodec.decode(frames.payload());
        final String heartbeatProblem = hello.heartbeatProblem();
        if (heartbeatProblem != null)
        {
            refuse(frames, socket, new Refusal(RefusalCode.PROTOCOL, heartbeatProblem));
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
            final ByteBuffer payload = frames.begin(ControlProtocol.REFUSE, 0).putShort((short)refusal.code().wireCode());
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
