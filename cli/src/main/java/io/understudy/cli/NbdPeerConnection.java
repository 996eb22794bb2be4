package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerRefusedException;
import io.understudy.nbd.client.NbdClientDevice;
import io.understudy.nbd.control.ControlLink;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

/**
 * The primary's link over NBD: forwarded writes go to the secondary's NBD sink, the control link is a separate
 * TCP connection. Nobody answering on the control address means a foreign peer (QEMU's secondary or a plain NBD
 * server), which the orchestrator checkpoints; a refusal is fatal, since a mismatched pair must not replicate.
 */
final class NbdPeerConnection implements PeerConnection
{
    private final NbdClientDevice sink;
    private final ControlLink control;
    private final String description;

    private NbdPeerConnection(final NbdClientDevice sink, final ControlLink control, final String description)
    {
        this.sink = sink;
        this.control = control;
        this.description = description;
    }

    /**
     * Connects the sink (retrying while nobody listens, until {@code connectTimeoutMillis}), checks its size
     * against the hello, then tries the control link.
     */
    static NbdPeerConnection connect(
        final NbdUri peer, final ListenAddress controlAddress, final Hello hello, final long connectTimeoutMillis,
        final LongSupplier epoch, final PeerControl.Listener listener)
    {
        final NbdClientDevice sink = connectSink(peer, connectTimeoutMillis);
        try
        {
            if (sink.size() != hello.diskSize())
            {
                throw new UserException("the peer's export has " + sink.size() + " bytes, the disk " +
                    hello.diskSize() + ": they must be equal");
            }
            final InetSocketAddress address = new InetSocketAddress(controlAddress.host(), controlAddress.port());
            try
            {
                final ControlLink link = ControlLink.connect(address, hello, hello.heartbeatTimeoutMillis(), epoch,
                    listener);
                return new NbdPeerConnection(sink, link, "forwarding to " + peer + ", control link up to " +
                    link.peerName() + " (heartbeat " + hello.heartbeatIntervalMillis() + " ms, timeout " +
                    hello.heartbeatTimeoutMillis() + " ms)");
            }
            catch (final PeerRefusedException e)
            {
                throw new UserException(e.getMessage(), e);
            }
            catch (final ConnectException e)
            {
                return new NbdPeerConnection(sink, null, "forwarding to " + peer + "; no control link " +
                    "answers at " + controlAddress.host() + ":" + controlAddress.port() + ", so the peer is a plain " +
                    "NBD server; checkpoint drains and flushes the forwarded writes, the orchestrator checkpoints " +
                    "the peer");
            }
            catch (final IOException e)
            {
                throw new UserException("control link " + address + ": " + e.getMessage(), e);
            }
        }
        catch (final RuntimeException e)
        {
            sink.close();
            throw e;
        }
    }

    private static NbdClientDevice connectSink(final NbdUri peer, final long connectTimeoutMillis)
    {
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(connectTimeoutMillis);
        final InetSocketAddress address = new InetSocketAddress(peer.host(), peer.port());
        while (true)
        {
            try
            {
                return NbdClientDevice.connect(address, peer.export());
            }
            catch (final IOException e)
            {
                if (!(e.getCause() instanceof ConnectException) || System.nanoTime() - deadline >= 0)
                {
                    throw new UserException("cannot reach the peer " + peer + ": " + e.getMessage(), e);
                }
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
            }
        }
    }

    @Override
    public BlockDevice forwarding()
    {
        return sink;
    }

    @Override
    public PeerControl control()
    {
        return control;
    }

    @Override
    public String describe()
    {
        return description;
    }

    @Override
    public void toJson(final ObjectNode transport)
    {
        transport.put("name", "nbd");
    }

    @Override
    public void close()
    {
        if (control != null)
        {
            control.close();
        }
        sink.close();
    }
}
