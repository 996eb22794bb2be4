package io.understudy.engine.replication;

/**
 * Life-cycle stage of one replicated disk (spec 2.2), the same for both roles:
 * <pre>
 *   NONE --start--> RUNNING --stop(false)--------------------------> DONE
 *                      |                                               ^
 *                      +--stop(true) / failover--> FAILOVER --commit ok-+
 *                                                     |
 *                                                     +--commit error--> FAILOVER_FAILED
 * </pre>
 * On the primary, FAILOVER is passed through at once (dropping the peer needs no commit).
 */
public enum ReplicationStage
{
    /** Not started: every I/O of the replicated device fails with EIO, nothing is forwarded. */
    NONE,
    /** Replicating: forwarded writes are accepted (secondary) or sent (primary). */
    RUNNING,
    /** Secondary only: forwarding is closed and A and H are being committed into S. */
    FAILOVER,
    /** Secondary only: the commit failed; the SVM keeps running on A > H > S, the error is latched. */
    FAILOVER_FAILED,
    /** Replication is over: the disk is served alone (after failover) or shut down. */
    DONE
}
