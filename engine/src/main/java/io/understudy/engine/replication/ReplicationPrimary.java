package io.understudy.engine.replication;

import io.understudy.engine.bitmap.AtomicBitmap;
import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.cow.CowFilter;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.WriteOrderGate;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * The primary's side of one replicated disk: the {@link BlockDevice} the guest's export stacks on, plus the
 * control operations start, checkpoint, stop/failover and get-error (spec 2.2, R5, R7).
 * <p>
 * <b>Block graphs</b>:
 * <pre>
 *   non-shared:  guest --> [gate] --> [order] --> MirroringDevice --+--> local disk P      (guest gets P's result)
 *                                                                  +--> PeerLink --> peer (secondary's sink)
 *   shared:      guest --> [gate] --> [order] --> CowFilter(below = shared disk,
 *                                                           target = PeerLink --> peer = secondary's H)
 * </pre>
 * The order gate ({@link WriteOrderGate}) holds a guest write that overlaps one still in flight until that one
 * has completed on both sides, so P and S apply overlapping writes in the same order (INV-S, AX-11); it sits
 * below the gate, so a checkpoint's drain counts held writes as in flight.
 * Reads are always local (INV-P). The peer is whatever transport presents the secondary's sink as a
 * {@link BlockDevice}. In shared mode the first write to a cluster in an epoch reads the original from the
 * shared disk and ships it to the secondary's H, and the guest write waits for that ack (spec 1.3); the copy is
 * done by {@link CowFilter} with the link as its target and no target reset (the secondary empties H itself).
 * <p>
 * <b>No silent gap</b> (AX-18, AX-19). Every forwarded request has a deadline; a peer error or a missed
 * deadline completes the guest's request with the local result, latches the error, marks the pair degraded
 * and stops forwarding for good (see {@link PeerLink}). The dirty bitmap, one bit per cluster, records every
 * cluster written since the last successful checkpoint (marked by the gate inside its in-flight window, so a
 * checkpoint's reset cannot fall between the mark and the write); it is what a resync must copy. A local
 * error always reaches the guest (AX-20).
 * <p>
 * <b>Gating</b>: NONE refuses all I/O with EIO (AX-09: never a guest write that is not forwarded); RUNNING
 * serves (held during a checkpoint's drain); after {@code stop(failover=true)} (the secondary is lost) the
 * disk is served alone, still tracking dirty clusters; after {@code stop(failover=false)} (shutdown) all I/O is
 * refused with ESHUTDOWN.
 * <p>
 * Control operations run on one control thread at a time; {@link #doWork()} is the duty cycle (deadlines of
 * forwarded requests, COW retries).
 */
public final class ReplicationPrimary implements BlockDevice, ReplicatedDisk
{
    static final String DEGRADED = "the pair is degraded (forwarding stopped): a full resync is needed";

    private static final long CLOSE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(100);
    private static final long CLOSE_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final BlockDevice local;
    private final boolean shared;
    private final int clusterShift;
    private final long clusterCount;
    private final PeerLink link;
    private final CowFilter cow;
    private final MirroringDevice mirror;
    private final WriteOrderGate order;
    private final GatedDevice front;
    private final AtomicBitmap dirty;
    private final ErrorLatch latch = new ErrorLatch();
    private final CheckpointHistory checkpoints = new CheckpointHistory();
    private volatile ReplicationStage stage = ReplicationStage.NONE;
    private volatile boolean checkpointing;
    private volatile long epoch;

    /**
     * @param local               the primary's disk (shared mode: the shared disk); not owned.
     * @param peer                the secondary's sink through a transport; not owned (closed by its transport).
     * @param shared              shared-disk mode.
     * @param clusterSize         dirty-bitmap and COW granularity, a power of two >= 4 KiB (64 KiB as QEMU;
     *                            in shared mode the secondary's cluster size).
     * @param forwardTimeoutNanos deadline of every forwarded request.
     * @param queueDepth          guest requests in flight at most.
     */
    public ReplicationPrimary(
        final BlockDevice local, final BlockDevice peer, final boolean shared, final int clusterSize,
        final long forwardTimeoutNanos, final int queueDepth)
    {
        if (Integer.bitCount(clusterSize) != 1 || clusterSize < 4096)
        {
            throw new IllegalArgumentException("clusterSize must be a power of two >= 4096: " + clusterSize);
        }
        if (peer.size() != local.size())
        {
            throw new IllegalArgumentException("the peer (" + peer.size() + " bytes) and the local disk (" +
                local.size() + " bytes) must have the same length");
        }
        this.local = local;
        this.shared = shared;
        this.clusterShift = Integer.numberOfTrailingZeros(clusterSize);
        this.clusterCount = Math.max(1, (local.size() + clusterSize - 1) >>> clusterShift);
        this.dirty = new AtomicBitmap(clusterCount);
        this.link = new PeerLink(peer, forwardTimeoutNanos, queueDepth, this::onPeerFailure);
        final BlockDevice inner;
        if (shared)
        {
            // H lives on the secondary, which empties it in its own part of the checkpoint (PeerCheckpoint).
            final CowFilter.TargetReset remoteReset = (completion, cookie) ->
            {
                completion.onComplete(cookie, 0);
                return true;
            };
            this.cow = new CowFilter(local, link, remoteReset, clusterSize, queueDepth, CowFilter.DEFAULT_COPY_BYTES,
                CowCopy.MEMORY);
            this.mirror = null;
            inner = cow;
        }
        else
        {
            this.cow = null;
            this.mirror = new MirroringDevice(local, link, queueDepth);
            inner = mirror;
        }
        this.order = new WriteOrderGate(inner, queueDepth);
        this.front = new GatedDevice(order, local.size(), queueDepth, this::markDirty, Errno.EIO);
    }

    public boolean isShared()
    {
        return shared;
    }

    @Override
    public ReplicationStage stage()
    {
        return stage;
    }

    /** @return completed checkpoints since start. */
    @Override
    public long epoch()
    {
        return epoch;
    }

    /** @return true once forwarding stopped because of a peer failure or deadline (needs a full resync). */
    public boolean isDegraded()
    {
        return stage == ReplicationStage.RUNNING && !link.isForwarding();
    }

    @Override
    public ReplicationState state()
    {
        return ReplicationState.of(stage, checkpointing, isDegraded());
    }

    public ErrorLatch.LatchedError latchedError()
    {
        return latch.get();
    }

    /** @return the link to the peer (counters: forwarded, timeouts, in flight). */
    public PeerLink link()
    {
        return link;
    }

    /** @return clusters written since the last successful checkpoint (what a resync must copy). */
    public AtomicBitmap dirtyBitmap()
    {
        return dirty;
    }

    /** @return durations of the successful checkpoints (for the counters). */
    public CheckpointHistory checkpoints()
    {
        return checkpoints;
    }

    /** @return clusters the COW filter copied to the secondary's H since start (shared mode; 0 otherwise). */
    public long cowCopies()
    {
        return cow == null ? 0 : cow.copies();
    }

    /** @return true if the cluster holding {@code offset} was written since the last successful checkpoint. */
    public boolean isDirty(final long offset)
    {
        return dirty.get(offset >>> clusterShift);
    }

    public int clusterSize()
    {
        return 1 << clusterShift;
    }

    /** Starts serving and forwarding (after the secondary started, spec 2.3). */
    @Override
    public synchronized ControlResult start(final ReplicationMode mode)
    {
        switch (stage)
        {
            case FAILOVER, DONE ->
            {
                return ControlResult.IGNORED;
            }
            case RUNNING, FAILOVER_FAILED ->
            {
                return ControlResult.error(Errno.EBUSY, ReplicationSecondary.RUNNING_OR_DONE);
            }
            default ->
            {
            }
        }
        if (mode != ReplicationMode.PRIMARY)
        {
            return ControlResult.error(Errno.EINVAL, "mode is " + mode + ", this disk was built as PRIMARY");
        }
        latch.clear();
        epoch = 0;
        stage = ReplicationStage.RUNNING;
        front.open();
        return ControlResult.OK;
    }

    /**
     * The secondary's part of a coordinated checkpoint, run by the primary while guest I/O is held and every
     * forwarded write is acknowledged and flushed (e.g. a request over the control link, or
     * {@link ReplicationSecondary#checkpoint} in the same process).
     */
    @FunctionalInterface
    public interface PeerCheckpoint
    {
        /**
         * @param deadlineNanos {@link System#nanoTime()} by which it must return.
         * @return 0 once the secondary's checkpoint succeeded, else a negated errno.
         */
        int checkpoint(long deadlineNanos);
    }

    /** No coordinated peer (a foreign secondary checkpointed by an orchestrator): drain and flush only. */
    public static final PeerCheckpoint NO_PEER_CHECKPOINT = deadlineNanos -> 0;

    /** A checkpoint without a coordinated peer: {@code checkpoint(timeoutNanos, NO_PEER_CHECKPOINT)}. */
    @Override
    public CheckpointReport checkpoint(final long timeoutNanos)
    {
        return checkpoint(timeoutNanos, NO_PEER_CHECKPOINT);
    }

    /**
     * Checkpoint, coordinated by the primary (R3): holds guest I/O and waits until none is in flight (forwarded
     * requests end by their own deadline at the latest), flushes the forwarded writes, runs the secondary's
     * checkpoint while the guest is still held (so no write of the new epoch can reach the secondary before
     * it emptied its overlays, nor be shipped into an H about to be emptied), then resets the COW state (shared
     * mode) and the dirty bitmap, advances the epoch and releases the guest.
     * <p>
     * Refused on a degraded pair (the dirty bitmap is kept for the resync). A missed deadline or a failed peer
     * checkpoint changes nothing here (the dirty bitmap keeps growing, the epoch stays). A no-op outside RUNNING
     * (spec 2.2: the primary's checkpoint never fails for its stage).
     *
     * @param timeoutNanos deadline of the whole checkpoint, the peer's part included.
     * @param peer         the secondary's part.
     */
    public synchronized CheckpointReport checkpoint(final long timeoutNanos, final PeerCheckpoint peer)
    {
        final long start = System.nanoTime();
        if (stage != ReplicationStage.RUNNING)
        {
            return new CheckpointReport(0, "ignored", epoch, 0, 0, 0, System.nanoTime() - start);
        }
        if (isDegraded())
        {
            return failed(-Errno.EIO, DEGRADED, start, 0, 0, 0);
        }
        final long deadline = start + timeoutNanos;
        checkpointing = true;
        try
        {
            front.hold();
            final boolean idle = awaitIdle(deadline);
            final long drained = System.nanoTime();
            if (!idle)
            {
                return failed(-Errno.ETIMEDOUT, "guest I/O did not drain before the deadline (nothing changed; " +
                    "retry)", start, drained - start, 0, 0);
            }
            final int flushed = ControlWait.run(link::flush, deadline);
            final long flushEnd = System.nanoTime();
            if (flushed < 0 || isDegraded())
            {
                return failed(flushed < 0 ? flushed : -Errno.EIO, flushed < 0 ?
                    "flushing the forwarded writes did not finish before the deadline" : DEGRADED, start,
                    drained - start, flushEnd - drained, 0);
            }
            final int peerResult = peer.checkpoint(deadline);
            final long peerEnd = System.nanoTime();
            if (peerResult < 0)
            {
                return failed(peerResult, "the secondary's checkpoint failed (see its status)", start,
                    drained - start, flushEnd - drained, peerEnd - flushEnd);
            }
            if (cow != null)
            {
                final int reset = cow.newEpoch(Math.max(0, deadline - System.nanoTime()));
                if (reset < 0)
                {
                    // The secondary has emptied H already: originals of this epoch could be missing there.
                    latch.latch(reset, "checkpoint: resetting the COW bitmap failed after the secondary's " +
                        "checkpoint");
                    link.drop();
                    return failed(reset, "resetting the COW bitmap failed; the pair is degraded", start,
                        drained - start, flushEnd - drained, System.nanoTime() - flushEnd);
                }
            }
            // Guest writes are held and none is in flight: no mark can be lost between the clear and a write.
            dirty.clearAll();
            epoch++;
            final long end = System.nanoTime();
            checkpoints.record(end - start);
            return new CheckpointReport(0, "", epoch, drained - start, flushEnd - drained, end - flushEnd,
                end - start);
        }
        finally
        {
            front.open();
            checkpointing = false;
        }
    }

    /**
     * stop(failover=true): the secondary is lost; drop the peer and serve the guest alone, still recording dirty
     * clusters (spec 3.2). stop(failover=false): shutdown; waits for guest I/O in flight (deadline) and refuses
     * all I/O from then on. Both end in DONE with the latch cleared (spec 2.2); the dirty bitmap is kept.
     */
    @Override
    public synchronized ControlResult stop(final boolean failover, final long timeoutNanos)
    {
        switch (stage)
        {
            case FAILOVER, DONE ->
            {
                return ControlResult.IGNORED;
            }
            case NONE, FAILOVER_FAILED ->
            {
                return ControlResult.error(Errno.EIO, ReplicationSecondary.NOT_RUNNING);
            }
            default ->
            {
            }
        }
        link.drop();
        if (!failover)
        {
            front.refuse(Errno.ESHUTDOWN);
            if (!awaitIdle(System.nanoTime() + timeoutNanos))
            {
                stage = ReplicationStage.DONE;
                return ControlResult.error(Errno.ETIMEDOUT, "guest I/O in flight did not finish before the " +
                    "deadline; new I/O is refused");
            }
        }
        latch.clear();
        stage = ReplicationStage.DONE;
        return ControlResult.OK;
    }

    /** get-error: EIO with the reason if an error is latched; an error too before start. */
    @Override
    public ControlResult getError()
    {
        if (stage == ReplicationStage.NONE)
        {
            return ControlResult.error(Errno.EIO, ReplicationSecondary.NOT_RUNNING);
        }
        final ErrorLatch.LatchedError error = latch.get();
        return error == null ? ControlResult.OK : ControlResult.error(error.errno(), error.reason());
    }

    /** Duty cycle: times out forwarded requests, retries requests waiting for back-pressure to ease. */
    public int doWork()
    {
        return link.doWork() + (cow != null ? cow.doWork() : mirror.doWork()) + order.doWork();
    }

    @Override
    public long size()
    {
        return local.size();
    }

    @Override
    public int alignment()
    {
        return front.alignment();
    }

    @Override
    public boolean isReadOnly()
    {
        return local.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        return local.canDiscard();
    }

    @Override
    public boolean canFastZero()
    {
        return local.canFastZero();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return front.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return front.write(offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return front.flush(completion, cookie);
    }

    /**
     * Non-shared: replicated as write-zeroes on both disks ({@link MirroringDevice}), so the range reads as
     * zeroes on P and on S. Shared: a discard of the shared disk, after its originals were shipped (COW).
     */
    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return front.discard(offset, length, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return front.writeZeroes(offset, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return local.blockStatus(offset, length, sink);
    }

    /** Refuses new I/O, completes what is in flight (forwarded requests end by their deadline), frees memory. */
    @Override
    public synchronized void close()
    {
        front.refuse(Errno.ESHUTDOWN);
        awaitIdle(System.nanoTime() + CLOSE_TIMEOUT_NANOS);
        if (cow != null)
        {
            cow.close();
        }
        link.close();
        dirty.close();
    }

    private boolean awaitIdle(final long deadline)
    {
        // Drives the link's deadlines itself: the owner's duty cycle may already be gone.
        while (front.inFlight() > 0)
        {
            if (System.nanoTime() - deadline >= 0)
            {
                return false;
            }
            doWork();
            LockSupport.parkNanos(CLOSE_POLL_NANOS);
        }
        return true;
    }

    private void markDirty(final long offset, final long length)
    {
        if (length <= 0 || offset < 0 || offset >= local.size())
        {
            return;
        }
        final long last = Math.min(local.size(), offset + length) - 1;
        dirty.setRange(offset >>> clusterShift, Math.min(clusterCount, (last >>> clusterShift) + 1));
    }

    private void onPeerFailure(final int errno, final String reason)
    {
        latch.latch(errno, reason);
    }

    private CheckpointReport failed(
        final int result, final String reason, final long start, final long drainNanos, final long flushNanos,
        final long resetNanos)
    {
        return new CheckpointReport(result, reason, epoch, drainNanos, flushNanos, resetNanos,
            System.nanoTime() - start);
    }
}
