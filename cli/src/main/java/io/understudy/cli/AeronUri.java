package io.understudy.cli;

import io.aeron.ChannelUri;
import picocli.CommandLine;

/**
 * A replication peer address over Aeron: {@code aeron:udp?endpoint=HOST:PORT} (the secondary's data endpoint,
 * where it subscribes and the primary publishes) or {@code aeron:ipc} (both daemons on one host, sharing one media
 * driver through {@code --aeron-dir}). Other channel parameters (mtu, term-length, ...) pass through to Aeron.
 *
 * @param channel the channel exactly as given.
 * @param host    the endpoint's host; null for IPC.
 * @param port    the endpoint's port (0: any free port, secondary only); -1 for IPC.
 */
record AeronUri(String channel, String host, int port) implements PeerUri
{
    static AeronUri parse(final String text)
    {
        final ChannelUri uri;
        try
        {
            uri = ChannelUri.parse(text);
        }
        catch (final RuntimeException e)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' is not an Aeron channel: " +
                e.getMessage());
        }
        if (uri.isIpc())
        {
            return new AeronUri(text, null, -1);
        }
        if (!uri.isUdp())
        {
            throw new CommandLine.TypeConversionException("'" + text + "': Aeron media must be udp or ipc");
        }
        final String endpoint = uri.get("endpoint");
        if (endpoint == null)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' names no endpoint: expected " +
                "aeron:udp?endpoint=HOST:PORT");
        }
        final ListenAddress address;
        try
        {
            address = ListenAddress.parse(endpoint);
        }
        catch (final CommandLine.TypeConversionException e)
        {
            throw new CommandLine.TypeConversionException("'" + text + "': endpoint " + e.getMessage());
        }
        return new AeronUri(text, address.host(), address.port());
    }

    boolean isIpc()
    {
        return host == null;
    }

    @Override
    public String toString()
    {
        return channel;
    }
}
