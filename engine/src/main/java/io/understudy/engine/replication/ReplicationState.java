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

    /** @return the lower-case name printed by the CLI, e.g. {@code "failover-failed"}. */
    public String label()
    {
        return label;
    }
}
