package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.aeron.AeronLinkContext;
import io.understudy.aeron.AeronMedia;
import io.understudy.aeron.AeronPrimaryLink;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerRefusedException;
import org.agrona.CloseHelper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The primary's link over Aeron: writes, acknowledgements, checkpoint barriers and heartbeats share the peer's
 * channel, on the embedded media driver unless {@code --aeron-dir} names an external one. An Aeron peer is
 * always an Understudy secondary, so there is no foreign case: nobody answering is an error.
 */
final class AeronPeerConnection implements PeerConnection
{
    private final AeronMedia media;
    private final AeronPrimaryLink link;

    private AeronPeerConnection(final AeronMedia media, final AeronPrimaryLink link)
    {
        this.media = media;
        this.link = link;
    }

    static AeronPeerConnection connect(
        final AeronUri peer, final Path aeronDir, final Hello hello, final long connectTimeoutMillis,
        final LongSupplier epoch, final PeerControl.Listener listener)
    {
        final AeronMedia media = AeronTransport.media(aeronDir);
        try
        {
            final AeronLinkContext context = new AeronLinkContext()
                .handshakeTimeoutNanos(TimeUnit.MILLISECONDS.toNanos(connectTimeoutMillis));
            return new AeronPeerConnection(media, AeronPrimaryLink.connect(media, peer.channel(), hello, context,
                epoch, listener));
        }
        catch (final PeerRefusedException e)
        {
            media.close();
            throw new UserException(e.getMessage(), e);
        }
        catch (final IOException e)
        {
            media.close();
            throw new UserException("cannot reach the peer " + peer + ": " + e.getMessage(), e);
        }
        catch (final RuntimeException e)
        {
            media.close();
            throw e;
        }
    }

    @Override
    public BlockDevice forwarding()
    {
        return link.forwarding();
    }

    @Override
    public PeerControl control()
    {
        return link;
    }

    @Override
    public String describe()
    {
        return "forwarding to " + link.peerName() + ", control link up to the same channel (heartbeat " +
            link.heartbeatIntervalMillis() + " ms, timeout " + link.heartbeatTimeoutMillis() + " ms, media driver " +
            (media.isEmbedded() ? "embedded" : "external") + " in " + media.directory() + ")";
    }

    @Override
    public void toJson(final ObjectNode transport)
    {
        transport.put("name", "aeron")
            .put("forwarded", link.forwarded())
            .put("acked", link.acked())
            .put("in-flight", link.inFlight())
            .put("unacked-bytes", link.unackedBytes())
            .put("back-pressure-waits", link.backPressureWaits())
            .put("back-pressure-us", TimeUnit.NANOSECONDS.toMicros(link.backPressureNanos()))
            .put("ignored-messages", link.ignoredMessages());
    }

    @Override
    public void close()
    {
        CloseHelper.closeAll(link, media);
    }
}
