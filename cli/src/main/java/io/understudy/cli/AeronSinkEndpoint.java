package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.aeron.AeronLinkContext;
import io.understudy.aeron.AeronMedia;
import io.understudy.aeron.AeronSecondaryEndpoint;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.link.LinkAcceptor;
import org.agrona.CloseHelper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/** The secondary's end over Aeron: one channel carries the primary's writes and the control messages. */
final class AeronSinkEndpoint implements SinkEndpoint
{
    private final AeronMedia media;
    private final AeronSecondaryEndpoint endpoint;

    private AeronSinkEndpoint(final AeronMedia media, final AeronSecondaryEndpoint endpoint)
    {
        this.media = media;
        this.endpoint = endpoint;
    }

    static AeronSinkEndpoint listen(
        final AeronUri listen, final Path aeronDir, final BlockDevice sink, final int handshakeTimeoutMillis,
        final LongSupplier epoch, final LinkAcceptor acceptor)
    {
        final AeronMedia media = AeronTransport.media(aeronDir);
        try
        {
            final AeronLinkContext context = new AeronLinkContext()
                .handshakeTimeoutNanos(TimeUnit.MILLISECONDS.toNanos(handshakeTimeoutMillis));
            return new AeronSinkEndpoint(media, AeronSecondaryEndpoint.listen(media, listen.channel(), sink,
                acceptor, epoch, context));
        }
        catch (final IOException | RuntimeException e)
        {
            media.close();
            throw new UserException(listen + ": " + e.getMessage(), e);
        }
    }

    @Override
    public String describe()
    {
        return "forwarding sink " + endpoint.resolvedChannel() + " (control link on the same channel, media driver " +
            (media.isEmbedded() ? "embedded" : "external") + " in " + media.directory() + ")";
    }

    @Override
    public void toJson(final ObjectNode transport)
    {
        transport.put("name", "aeron")
            .put("applied", endpoint.applied())
            .put("acks-sent", endpoint.acksSent())
            .put("sink-back-pressure", endpoint.sinkBackPressure())
            .put("ignored-messages", endpoint.ignoredMessages())
            .put("refusals", endpoint.refusals());
    }

    @Override
    public void close()
    {
        CloseHelper.closeAll(endpoint, media);
    }
}
