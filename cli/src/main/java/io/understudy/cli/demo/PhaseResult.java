package io.understudy.cli.demo;

/**
 * What one mode's run measured and whether the survivor held what it must.
 *
 * @param mode               "non-shared" or "shared".
 * @param workloadNanos      from the first write to the crash.
 * @param writes             guest writes acknowledged before the crash.
 * @param bytes              bytes of those writes.
 * @param checkpoints        checkpoints completed.
 * @param checkpointFailures checkpoints that failed (the epoch did not advance; the model did not either).
 * @param checkpointP50      median duration of a completed checkpoint (the primary's checkpoint call, the
 *                           secondary's part included), nanoseconds.
 * @param checkpointP99      99th percentile of the same.
 * @param pauseP99           99th percentile of the guest's pause per checkpoint (its writes in flight drained,
 *                           then the checkpoint), nanoseconds.
 * @param rolledBackBlocks   4 KiB blocks written and acknowledged in the epoch the crash cut short.
 * @param failoverNanos      from the failover command to the end of the commit on the secondary.
 * @param committedBytes     bytes the failover commit copied from the overlays into the survivor's disk.
 * @param verification       the survivor's disk against the model; null if the run failed before.
 * @param failure            why the run failed before verification, else null.
 */
record PhaseResult(
    String mode, long workloadNanos, long writes, long bytes, long checkpoints, long checkpointFailures,
    long checkpointP50, long checkpointP99, long pauseP99, long rolledBackBlocks, long failoverNanos,
    long committedBytes, Verification verification, String failure)
{
    boolean ok()
    {
        return failure == null && verification != null && verification.ok();
    }

    /** A run that failed before its survivor could be verified. */
    static PhaseResult failed(final String mode, final String failure)
    {
        return new PhaseResult(mode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, null, failure);
    }

    /** @return this result with its measurements, failed for {@code reason} (e.g. the teardown after it). */
    PhaseResult withFailure(final String reason)
    {
        return new PhaseResult(mode, workloadNanos, writes, bytes, checkpoints, checkpointFailures, checkpointP50,
            checkpointP99, pauseP99, rolledBackBlocks, failoverNanos, committedBytes, verification, reason);
    }

    /** @return why the run failed, or null if it verified. */
    String problem()
    {
        if (failure != null)
        {
            return failure;
        }
        return verification.ok() ? null : "the survivor's disk differs from the last completed checkpoint: " +
            verification.describe();
    }
}
