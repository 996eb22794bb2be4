package io.understudy.cli;

import picocli.CommandLine;

import java.net.URI;
import java.net.URISyntaxException;

/** A replication peer address over NBD: {@code nbd://HOST:PORT/EXPORT} (port 10809 if omitted). */
record NbdUri(String host, int port, String export) implements PeerUri
{
    static final int DEFAULT_PORT = 10809;

    static final class Converter implements CommandLine.ITypeConverter<NbdUri>
    {
        @Override
        public NbdUri convert(final String value)
        {
            return parse(value);
        }
    }

    static NbdUri parse(final String text)
    {
        final URI uri;
        try
        {
            uri = new URI(text);
        }
        catch (final URISyntaxException e)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' is not a URI: " + e.getReason());
        }
        if (!"nbd".equals(uri.getScheme()))
        {
            throw new CommandLine.TypeConversionException("'" + text + "' is not nbd://HOST:PORT/EXPORT");
        }
        if (uri.getHost() == null)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' names no host: expected " +
                "nbd://HOST:PORT/EXPORT");
        }
        final String path = uri.getPath() == null ? "" : uri.getPath();
        final String export = path.startsWith("/") ? path.substring(1) : path;
        if (export.isEmpty() || export.contains("/"))
        {
            throw new CommandLine.TypeConversionException("'" + text + "' must name one export: " +
                "nbd://HOST:PORT/EXPORT");
        }
        if (uri.getQuery() != null || uri.getFragment() != null || uri.getUserInfo() != null)
        {
            throw new CommandLine.TypeConversionException("'" + text + "' has parts nbd:// does not take " +
                "(user, query or fragment)");
        }
        final String host = uri.getHost().startsWith("[") ? uri.getHost().substring(1, uri.getHost().length() - 1) :
            uri.getHost();
        return new NbdUri(host, uri.getPort() < 0 ? DEFAULT_PORT : uri.getPort(), export);
    }

    @Override
    public String toString()
    {
        return "nbd://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port + "/" + export;
    }
}
