package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Shows a long failover commit on stderr while {@code understudy failover} waits for it: polls the daemon's
 * {@code status} on a second connection (status runs beside state-changing commands) and prints a line whenever
 * the committed amount moved. Runs until interrupted; a status that fails only ends the display.
 */
final class CommitProgress implements Runnable
{
    private static final long POLL_MILLIS = 250;
    private static final double MIB = 1 << 20;

    private final Path control;
    private final PrintWriter err;

    CommitProgress(final Path control, final PrintWriter err)
    {
        this.control = control;
        this.err = err;
    }

    @Override
    public void run()
    {
        long shown = -1;
        try
        {
            while (!Thread.currentThread().isInterrupted())
            {
                TimeUnit.MILLISECONDS.sleep(POLL_MILLIS);
                final JsonNode commit = ControlClient.execute(control, ControlServer.QUERY,
                    ControlServer.JSON.createObjectNode()).path("commit");
                final long done = commit.path("done-bytes").asLong();
                final long total = commit.path("total-bytes").asLong();
                if (total > 0 && done != shown)
                {
                    shown = done;
                    err.printf("understudy: committing A and H into the disk: %.1f of %.1f MiB (%d%%)%n", done / MIB,
                        total / MIB, done * 100 / total);
                    err.flush();
                }
            }
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
        catch (final UserException e)
        {
            // The daemon stopped answering status; the failover command itself reports what happened.
        }
    }
}
