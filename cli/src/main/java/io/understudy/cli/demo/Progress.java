package io.understudy.cli.demo;

import java.io.Console;
import java.io.PrintWriter;

/**
 * A one-line progress bar redrawn in place with a carriage return, at most ten times a second. Disabled when
 * the output is not a terminal (logs, CI, tests) or on request: then it prints nothing at all.
 */
final class Progress
{
    private static final int WIDTH = 30;
    private static final long REDRAW_NANOS = 100_000_000L;
    private static final String CLEAR_TO_END = "\033[K";

    private final PrintWriter out;
    private final boolean enabled;
    private long lastDraw;
    private boolean drawn;

    Progress(final PrintWriter out, final boolean enabled)
    {
        this.out = out;
        this.enabled = enabled;
    }

    /** @return true if standard output and error are a terminal (Java's console says so). */
    static boolean isTerminal()
    {
        final Console console = System.console();
        return console != null && console.isTerminal();
    }

    /**
     * @param label       what runs, e.g. the mode.
     * @param elapsed     nanoseconds since the workload started.
     * @param total       nanoseconds it will run.
     * @param bytes       bytes written so far.
     * @param checkpoints checkpoints taken so far.
     */
    void update(final String label, final long elapsed, final long total, final long bytes, final long checkpoints)
    {
        if (!enabled || (drawn && elapsed - lastDraw < REDRAW_NANOS))
        {
            return;
        }
        lastDraw = elapsed;
        drawn = true;
        final double fraction = Math.clamp((double)elapsed / total, 0.0, 1.0);
        final int filled = (int)(fraction * WIDTH);
        final double seconds = elapsed / 1e9;
        out.printf("\r%-10s [%s%s] %3d%% %5.1f s %8.1f MiB/s  %4d checkpoints%s", label, "#".repeat(filled),
            "-".repeat(WIDTH - filled), (int)(fraction * 100), seconds,
            seconds > 0 ? bytes / seconds / (1 << 20) : 0.0, checkpoints, CLEAR_TO_END);
        out.flush();
    }

    /** Clears the bar's line so that the next output starts on a clean line. */
    void clear()
    {
        if (drawn)
        {
            out.print("\r" + CLEAR_TO_END);
            out.flush();
            drawn = false;
        }
    }
}
