package io.understudy.cli;

/**
 * What a daemon does when its peer's heartbeats stop ({@code --on-peer-loss}). {@link #REPORT} is the default
 * because silence alone cannot tell a dead peer from a partitioned one: with {@link #FAILOVER} and no witness,
 * a network partition makes both sides survivors (split brain); the generation rules then refuse to rejoin them,
 * but the two disks have diverged and one side's writes must be discarded by a resync.
 */
enum PeerLossAction
{
    /** Log it, mark the pair degraded (primary) or the link lost (secondary), wait for the operator. */
    REPORT,
    /** Primary: drop the secondary and serve alone. Secondary: fail over (commit A and H into S) at once. */
    FAILOVER
}
