package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.nbd.control.ControlLinkListener;
import io.understudy.nbd.server.NbdServer;

import java.io.IOException;
import java.util.function.LongSupplier;

/**
 * The secondary's end over NBD: the sink is an NBD export on TCP (any NBD client may forward, QEMU's primary
 * included), and the control link of an Understudy primary is accepted on a second TCP port.
 */
final class NbdSinkEndpoint implements SinkEndpoint
{
    private final ControlLinkListener links;
    private final NbdServer sink;
    private final String description;

    private NbdSinkEndpoint(final ControlLinkListener links, final NbdServer sink, final String description)
    {
        this.links = links;
        this.sink = sink;
        this.description = description;
    }

    static NbdSinkEndpoint listen(
        final NbdUri listen, final ListenAddress controlListen, final BlockDevice sinkDevice,
        final int handshakeTimeoutMillis, final LongSupplier epoch, final LinkAcceptor acceptor,
        final DaemonCounters counters, final String disk)
    {
        final ControlLinkListener links;
        try
        {
            links = new ControlLinkListener(controlListen.host(), controlListen.port(), handshakeTimeoutMillis,
                epoch, acceptor);
        }
        catch (final IOException e)
        {
            throw new UserException("control link " + controlListen.host() + ":" + controlListen.port() + ": " +
                e.getMessage(), e);
        }
        try
        {
            final NbdServer sink = Exports.tcp(sinkDevice, listen, counters, disk);
            return new NbdSinkEndpoint(links, sink, "forwarding sink nbd://" + listen.host() + ":" + sink.tcpPort() +
                "/" + listen.export() + ", control link " + controlListen.host() + ":" + links.port());
        }
        catch (final RuntimeException e)
        {
            links.close();
            throw e;
        }
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
        try (ControlLinkListener _ = links)
        {
            sink.close();
        }
    }
}
