package io.understudy.engine.replication;

/**
 * What an operator is told about a replicated disk ({@code understudy status}): the {@link ReplicationStage}
 * refined by what is happening right now. The labels are a CLI contract.
 */
public enum ReplicationState
{
    /** Not started. */
    NONE("none"),
    /** Replicating normally. */
    RUNNING("running"),
    /** A checkpoint is draining I/O or emptying the overlays. */
    CHECKPOINTING("checkpointing"),
    /** The secondary is committing A and H into S. */
    FAILOVER("failover"),
    /** The commit failed; the SVM runs on, the disk needs attention. */
    FAILOVER_FAILED("failover-failed"),
    /** Running, but an error is latched: the pair no longer replicates and needs a full resync. */
    DEGRADED("degraded"),
    /** Replication is over (served alone or shut down). */
    DONE("done");

    private final String label;

    ReplicationState(final String label)
    {
        this.label = label;
    }

    /**
     * The one mapping of a disk's stage to what the operator sees, for both roles.
     *
     * @param checkpointing a checkpoint runs now.
     * @param degraded      the pair no longer replicates (a latched error, stopped forwarding).
     */
    public static ReplicationState of(final ReplicationStage stage, final boolean checkpointing, final boolean degraded)
    {
        return switch (stage)
        {
            case NONE -> NONE;
            case RUNNING -> checkpointing ? CHECKPOINTING : degraded ? DEGRADED : RUNNING;
            case FAILOVER -> FAILOVER;
            case FAILOVER_FAILED -> FAILOVER_FAILED;
            case DONE -> DONE;
        };
    }

    /** @return the lower-case name printed by the CLI, e.g. {@code "failover-failed"}. */
    public String label()
    {
        return label;
    }
}
