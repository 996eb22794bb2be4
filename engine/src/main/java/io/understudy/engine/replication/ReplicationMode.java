package io.understudy.engine.replication;

/** The role a replicated disk was built for; {@code start} must name the same role (spec 2.2). */
public enum ReplicationMode
{
    PRIMARY,
    SECONDARY
}
