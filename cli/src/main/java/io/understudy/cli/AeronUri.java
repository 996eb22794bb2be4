package io.understudy.cli;

import io.understudy.aeron.AeronChannel;
import picocli.CommandLine;

/**
 * A replication peer address over Aeron: {@code aeron:udp?endpoint=HOST:PORT} (the secondary's endpoint, where it
 * subscribes and the primary publishes) or {@code aeron:ipc} (both daemons on one host, sharing one media driver
 * through {@code --aeron-dir}). Other channel parameters (mtu, term-length, ...) pass through to Aeron.
 */
record AeronUri(AeronChannel channel) implements PeerUri
{
    static AeronUri parse(final String text)
    {
        final AeronChannel channel;
        try
        {
            channel = AeronChannel.parse(text);
        }
        catch (final IllegalArgumentException e)
        {
            throw new CommandLine.TypeConversionException(e.getMessage());
        }
        if (!channel.isIpc())
        {
            try
            {
                ListenAddress.parse(channel.endpoint());
            }
            catch (final CommandLine.TypeConversionException e)
            {
                throw new CommandLine.TypeConversionException("'" + text + "': endpoint " + e.getMessage());
            }
        }
        return new AeronUri(channel);
    }

    boolean isIpc()
    {
        return channel.isIpc();
    }

    @Override
    public String toString()
    {
        return channel.toString();
    }
}
