package io.understudy.cli;

import picocli.CommandLine;

/**
 * Where a replication peer is reached (primary's {@code --peer}) or served (secondary's {@code --listen}); the
 * scheme picks the transport: {@code nbd://HOST:PORT/EXPORT} or {@code aeron:udp?endpoint=HOST:PORT} /
 * {@code aeron:ipc}.
 */
sealed interface PeerUri permits NbdUri, AeronUri
{
    String USAGE = "nbd://HOST:PORT/EXPORT, aeron:udp?endpoint=HOST:PORT or aeron:ipc";

    final class Converter implements CommandLine.ITypeConverter<PeerUri>
    {
        @Override
        public PeerUri convert(final String value)
        {
            return parse(value);
        }
    }

    static PeerUri parse(final String text)
    {
        if (text.startsWith("nbd:"))
        {
            return NbdUri.parse(text);
        }
        if (text.startsWith("aeron:"))
        {
            return AeronUri.parse(text);
        }
        final int colon = text.indexOf(':');
        throw new CommandLine.TypeConversionException(colon > 0 ? "unsupported transport '" +
            text.substring(0, colon) + "' in '" + text + "': expected " + USAGE :
            "'" + text + "' has no transport scheme: expected " + USAGE);
    }
}
