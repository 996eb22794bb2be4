package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.replication.ReplicationStage;

/**
 * One disk of a replication sidecar as its control socket drives it, whatever the role: the sidecar of one disk
 * answers with these replies as they are, the sidecar of several collects them per disk ({@link DiskGroup}).
 * Each operation is the whole of what the daemon does for that disk (the peer told, state records written, events
 * emitted), not just the engine's part.
 */
interface SidecarDisk
{
    /** @return the disk's name: its config section's, or its file's for a sidecar started from flags. */
    String name();

    ReplicationStage stage();

    long epoch();

    /** @return the disk's {@code status} object, without the daemon's counters. */
    ObjectNode status();

    ObjectNode checkpoint(long timeoutNanos) throws ControlException;

    ObjectNode failover(long timeoutNanos) throws ControlException;

    /** stop(failover=false): replication ends, the daemon keeps serving. */
    ObjectNode stop(long timeoutNanos) throws ControlException;

    /** @return the disk's size in bytes, for the ready line. */
    long size();

    /** @return the ready line's part about this disk: its export and its link. */
    String describe();

    /** One turn of the disk's duty cycle (deadlines, link checks); @return the work done. */
    int doWork();
}
