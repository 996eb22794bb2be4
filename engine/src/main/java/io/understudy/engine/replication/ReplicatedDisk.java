package io.understudy.engine.replication;

/** The control surface both roles share (spec 2.1 {@code ReplicationOps}), so a sidecar can drive many disks. */
public interface ReplicatedDisk
{
    ReplicationStage stage();

    ReplicationState state();

    /** @return completed checkpoints since start. */
    long epoch();

    ControlResult start(ReplicationMode mode);

    CheckpointReport checkpoint(long timeoutNanos);

    ControlResult stop(boolean failover, long timeoutNanos);

    ControlResult getError();
}
