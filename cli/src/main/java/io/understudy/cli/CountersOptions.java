package io.understudy.cli;

import io.understudy.cli.counters.DaemonRole;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;

/** Where a daemon keeps its counters file and error log: {@code --counters}, {@code --error-log}. */
final class CountersOptions
{
    static final String COUNTERS_SUFFIX = ".counters";
    static final String ERRORS_SUFFIX = ".errors";

    @Option(names = "--counters", paramLabel = "FILE",
        description = "Memory-mapped counters read by understudy stat, also while the daemon is hung (default: " +
            "the control socket's path + " + COUNTERS_SUFFIX + ").")
    Path counters;

    @Option(names = "--error-log", paramLabel = "FILE",
        description = "Memory-mapped log of distinct errors read by understudy errors, also after a crash " +
            "(default: the control socket's path + " + ERRORS_SUFFIX + ").")
    Path errorLog;

    @Option(names = "--metrics-listen", paramLabel = "HOST:PORT", converter = ListenAddress.Converter.class,
        description = "Also serve the counters as Prometheus text on http://HOST:PORT" + MetricsEndpoint.PATH +
            " (loopback addresses only; port 0 picks a free port).")
    ListenAddress metricsListen;

    /**
     * Creates both files; the defaults sit next to {@code base} (the control socket, or the NBD socket of serve).
     */
    DaemonCounters open(final DaemonRole role, final boolean shared, final Path base, final PrintWriter out)
    {
        final Path countersPath = counters != null ? counters : sibling(base, COUNTERS_SUFFIX);
        final Path errorLogPath = errorLog != null ? errorLog : sibling(base, ERRORS_SUFFIX);
        if (metricsListen != null)
        {
            MetricsEndpoint.loopback(metricsListen);
        }
        final DaemonCounters opened = DaemonCounters.open(countersPath, errorLogPath, role, shared);
        out.printf("understudy: counters in %s (understudy stat --counters %s), errors in %s%n", countersPath,
            countersPath, errorLogPath);
        if (metricsListen != null)
        {
            try
            {
                final MetricsEndpoint metrics = opened.serveMetrics(metricsListen);
                out.printf("understudy: metrics on http://%s:%d%s%n", metricsListen.host().contains(":") ? "[" +
                    metricsListen.host() + "]" : metricsListen.host(), metrics.address().getPort(),
                    MetricsEndpoint.PATH);
            }
            catch (final RuntimeException e)
            {
                opened.close();
                throw e;
            }
        }
        return opened;
    }

    /** @return {@code base} with {@code suffix} appended to its file name. */
    static Path sibling(final Path base, final String suffix)
    {
        return base.resolveSibling(base.getFileName() + suffix);
    }

    /** @return the base of a TCP-only serve daemon's files: the temporary directory, named by the pid. */
    static Path tcpServeBase()
    {
        return Path.of(System.getProperty("java.io.tmpdir"), "understudy-serve-" + ProcessHandle.current().pid());
    }
}
