package io.understudy.engine.replication;

import io.understudy.engine.device.Errno;

/**
 * What a checkpoint did and how long each step took, for the operator and the checkpoint-duration counters.
 * A failed checkpoint reports the step it stopped at through {@code reason}; the steps not run report 0.
 *
 * @param result     0, or a negated errno (ETIMEDOUT for a missed deadline).
 * @param reason     empty on success, else why the checkpoint failed.
 * @param epoch      the epoch after the call (incremented only on success).
 * @param drainNanos time to quiesce the I/O the checkpoint must not race (forwarded, guest or SVM).
 * @param flushNanos time to flush forwarded writes (primary; 0 on the secondary).
 * @param resetNanos time to reset the COW state and make the overlays empty; on the primary, the secondary's
 *                   checkpoint (run while the guest is held) and the reset of its COW state and dirty bitmap.
 * @param totalNanos wall time of the whole call.
 */
public record CheckpointReport(
    int result, String reason, long epoch, long drainNanos, long flushNanos, long resetNanos, long totalNanos)
{
    public boolean ok()
    {
        return result >= 0;
    }

    @Override
    public String toString()
    {
        return (ok() ? "checkpoint ok" : "checkpoint failed: " + Errno.name(result) + ": " + reason) +
            " epoch=" + epoch + " drain=" + drainNanos / 1000 + "us flush=" + flushNanos / 1000 + "us reset=" +
            resetNanos / 1000 + "us total=" + totalNanos / 1000 + "us";
    }
}
