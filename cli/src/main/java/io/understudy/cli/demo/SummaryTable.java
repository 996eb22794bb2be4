package io.understudy.cli.demo;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

/** The demo's closing table: one row per mode, the numbers an operator asks about first. */
final class SummaryTable
{
    private static final String FORMAT = "%-10s %9s %8s %6s %9s %9s %9s %11s %9s %12s  %s%n";

    private SummaryTable()
    {
    }

    static void print(final PrintWriter out, final List<PhaseResult> results)
    {
        out.printf(Locale.ROOT, FORMAT, "mode", "MiB/s", "IOPS", "ckpts", "ckpt p50", "ckpt p99", "pause p99",
            "rolled back", "failover", "verified B", "result");
        for (final PhaseResult r : results)
        {
            final double seconds = r.workloadNanos() / 1e9;
            out.printf(Locale.ROOT, FORMAT, r.mode(),
                seconds > 0 ? String.format(Locale.ROOT, "%.1f", r.bytes() / seconds / (1 << 20)) : "-",
                seconds > 0 ? String.format(Locale.ROOT, "%.0f", r.writes() / seconds) : "-",
                r.checkpoints() + (r.checkpointFailures() > 0 ? "+" + r.checkpointFailures() + "!" : ""),
                millis(r.checkpointP50()), millis(r.checkpointP99()), millis(r.pauseP99()),
                r.rolledBackBlocks() + " blk", millis(r.failoverNanos()),
                r.verification() != null ? Long.toString(r.verification().bytesVerified()) : "-",
                r.ok() ? "OK" : "FAILED");
        }
        out.flush();
    }

    private static String millis(final long nanos)
    {
        return String.format(Locale.ROOT, "%.2f ms", nanos / 1e6);
    }
}
