package io.understudy.cli;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.understudy.cli.counters.CounterType;
import io.understudy.cli.counters.DaemonRole;
import org.agrona.concurrent.status.CountersReader;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;

/**
 * {@code --metrics-listen}: the daemon's counters as Prometheus text on {@code GET /metrics}, for scrapers that
 * cannot read the counters file. Loopback only: the endpoint has no authentication, and a node exporter or a
 * local agent is the one meant to forward it. Served on one daemon thread of the JDK's HTTP server, off every
 * I/O path; each scrape reads the mapped counters as {@code understudy stat} does.
 * <p>
 * Names are {@code understudy_} and the counter's label with dashes as underscores; an NBD export's counters
 * carry {@code export="NAME"}, a disk's counters in a sidecar of several disks {@code disk="NAME"}; the coded
 * counters are one-hot, e.g. {@code understudy_state{state="running"} 1}.
 */
final class MetricsEndpoint implements AutoCloseable
{
    static final String PATH = "/metrics";
    private static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

    private final HttpServer server;
    private final CountersReader counters;
    private final DaemonRole role;

    private MetricsEndpoint(final HttpServer server, final CountersReader counters, final DaemonRole role)
    {
        this.server = server;
        this.counters = counters;
        this.role = role;
    }

    /**
     * Binds and starts the endpoint.
     *
     * @throws UserException for a non-loopback address or a failed bind.
     */
    static MetricsEndpoint start(final ListenAddress address, final CountersReader counters, final DaemonRole role)
    {
        final InetAddress host = loopback(address);
        try
        {
            final HttpServer server = HttpServer.create(new InetSocketAddress(host, address.port()), 0);
            final MetricsEndpoint endpoint = new MetricsEndpoint(server, counters, role);
            server.createContext(PATH, endpoint::handle);
            server.start();
            return endpoint;
        }
        catch (final IOException e)
        {
            throw new UserException("--metrics-listen " + address.host() + ":" + address.port() + ": " +
                e.getMessage(), e);
        }
    }

    /**
     * @return the address's host, resolved.
     * @throws UserException if it is not a loopback address (checked before the daemon creates anything).
     */
    static InetAddress loopback(final ListenAddress address)
    {
        final InetAddress host;
        try
        {
            host = InetAddress.getByName(address.host());
        }
        catch (final UnknownHostException e)
        {
            throw new UserException("--metrics-listen " + address.host() + ": unknown host", e);
        }
        if (!host.isLoopbackAddress())
        {
            throw new UserException("--metrics-listen must be a loopback address (127.0.0.1 or [::1]), not " +
                address.host() + ": the metrics endpoint has no authentication");
        }
        return host;
    }

    /** @return where it listens, for the start-up line. */
    InetSocketAddress address()
    {
        return server.getAddress();
    }

    @Override
    public void close()
    {
        server.stop(0);
    }

    /** @return the exposition text of every counter now. */
    String render()
    {
        final StringBuilder text = new StringBuilder(4096);
        text.append("# understudy ").append(role.label()).append(" daemon, pid ").append(ProcessHandle.current().pid())
            .append('\n');
        counters.forEach((value, counterId, label) ->
        {
            final CounterType type = CounterType.of(counters.getCounterTypeId(counterId));
            if (type == null)
            {
                return;
            }
            final String name = "understudy_" + type.label().replace('-', '_');
            final int at = label.lastIndexOf(CounterType.DISK_SEPARATOR);
            final String disk = at < 0 ? null : label.substring(at + 1);
            final String base = at < 0 ? label : label.substring(0, at);
            final int colon = base.indexOf(':');
            final String export = colon < 0 ? null : base.substring(colon + 1);
            final StringBuilder labels = new StringBuilder();
            if (type.isCode())
            {
                labels.append(type.label().replace('-', '_')).append("=\"").append(type.render(value)).append('"');
            }
            else if (export != null)
            {
                labels.append("export=\"").append(escape(export)).append('"');
            }
            if (disk != null)
            {
                labels.append(labels.isEmpty() ? "" : ",").append("disk=\"").append(escape(disk)).append('"');
            }
            text.append(name);
            if (!labels.isEmpty())
            {
                text.append('{').append(labels).append('}');
            }
            text.append(' ').append(type.isCode() ? 1 : value).append('\n');
        });
        return text.toString();
    }

    private void handle(final HttpExchange exchange) throws IOException
    {
        try (exchange)
        {
            if (!"GET".equals(exchange.getRequestMethod()) || !PATH.equals(exchange.getRequestURI().getPath()))
            {
                exchange.sendResponseHeaders(404, -1);
                return;
            }
            final byte[] body = render().getBytes(StandardCharsets.UTF_8);
            exchange.getResponseHeaders().set("Content-Type", CONTENT_TYPE);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody())
            {
                out.write(body);
            }
        }
    }

    private static String escape(final String value)
    {
        return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }
}
