/**
 * Replication core, no wires: {@link io.understudy.engine.replication.ReplicationSecondary} (forwarding sink
 * with copy-before-write into the hidden overlay, the SVM view A > H > S, checkpoint, failover commit, stop)
 * and {@link io.understudy.engine.replication.ReplicationPrimary} (the guest's disk: local writes forwarded
 * through a {@link io.understudy.engine.replication.PeerLink} with deadlines, degraded mode with a dirty
 * bitmap, shared-disk COW shipping), the stage machine ({@link io.understudy.engine.replication.ReplicationStage},
 * {@link io.understudy.engine.replication.ReplicationState}, {@link io.understudy.engine.replication.ErrorLatch})
 * and the I/O gate both roles use ({@link io.understudy.engine.replication.GatedDevice}). Transports hand the
 * peer in as a {@link io.understudy.engine.device.BlockDevice}.
 */
package io.understudy.engine.replication;
