package io.understudy.cli;

import picocli.CommandLine;

/**
 * A TCP listen address {@code HOST:PORT}, {@code [IPv6]:PORT} or {@code :PORT}. The host defaults to
 * 127.0.0.1: an NBD export has no authentication, so it is reachable from elsewhere only when asked for.
 */
public record ListenAddress(String host, int port)
{
    public static final String LOOPBACK = "127.0.0.1";

    public static final class Converter implements CommandLine.ITypeConverter<ListenAddress>
    {
        @Override
        public ListenAddress convert(final String value)
        {
            return parse(value);
        }
    }

    public static ListenAddress parse(final String text)
    {
        final int colon = text.lastIndexOf(':');
        if (colon < 0)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' is not HOST:PORT (e.g. 127.0.0.1:10809)");
        }
        String host = text.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]"))
        {
            host = host.substring(1, host.length() - 1);
        }
        final int port;
        try
        {
            port = Integer.parseInt(text.substring(colon + 1));
        }
        catch (final NumberFormatException e)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' has no valid port (0-65535)");
        }
        if (port < 0 || port > 65535)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' has no valid port (0-65535)");
        }
        return new ListenAddress(host.isEmpty() ? LOOPBACK : host, port);
    }
}
