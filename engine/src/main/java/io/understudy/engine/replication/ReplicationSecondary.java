package io.understudy.engine.replication;

import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.cow.CowFilter;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.WriteOrderGate;
import io.understudy.engine.overlay.OverlayCommit;
import io.understudy.engine.overlay.OverlayDevice;
import io.understudy.engine.overlay.OverlayStorage;

import java.lang.foreign.Arena;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The secondary's side of one replicated disk: the sink that forwarded primary writes arrive on, the SVM's
 * view of the disk, and the control operations start, checkpoint, failover, stop and get-error with the stage
 * machine and gating of spec 2.2 (stricter where R6 says so).
 * <p>
 * <b>Block graphs</b> (built by {@link #start}):
 * <pre>
 *   non-shared:  sink --> [gate] --> [order] --> CowFilter(target = H) --> S (originals to H, then S written)
 *                view --> [gate] --> A --> H --> S                           (OverlayDevice chain)
 *   shared:      sink --> [gate] --> [order] --> H --> S(read-only for us)   (the primary ships COW originals)
 *                view --> [gate] --> A --> H --> S
 * </pre>
 * The sink's order gate ({@link WriteOrderGate}) applies overlapping forwarded writes one after the other, in
 * arrival order, so the one answered last is the one S keeps (AX-11), even from a primary that keeps overlapping
 * writes in flight (QEMU does). It sits below the gate, so a checkpoint's drain counts held writes as in flight.
 * In shared mode S is the disk both hosts see; the secondary never writes it except for the failover commit,
 * which is only safe once the old primary is fenced (spec 1.3). Primary and secondary must use the same
 * cluster size there, so that a shipped original always covers whole clusters of H.
 * <p>
 * <b>H's cluster size</b> may be smaller than the cluster size (a power of two dividing it). In non-shared mode
 * it is the unit the COW filter copies, so a 4 KiB forwarded write into a 64 KiB cluster copies 4 KiB, not 64:
 * H keeps one bit per small cluster, the way qcow2's subclusters refine its clusters, and only H and the COW
 * filter pay that bitmap memory; A, and the primary's bitmaps, keep the cluster size.
 * <p>
 * <b>Gating</b> ({@link GatedDevice}; "refuse" completes with the errno, "hold" is back-pressure):
 * <pre>
 *   stage            sink                        view
 *   NONE             refuse EIO (AX-09)          refuse EIO (AT-04)
 *   RUNNING          open (held at checkpoint)   open, A > H > S (held at checkpoint)
 *   FAILOVER         refuse ESHUTDOWN (AX-16)    reads open, writes held until the commit ends
 *   FAILOVER_FAILED  refuse ESHUTDOWN            open, A > H > S
 *   DONE             refuse ESHUTDOWN            open on S (non-shared; shared after stop(false): refuse)
 * </pre>
 * SVM writes are held, not refused, during the commit (spec AX-15 wants them in S afterwards): the commit
 * walks A and H in offset order and a write behind its cursor would be lost. In FAILOVER_FAILED the SVM keeps
 * writing into A rather than splitting writes between A and S as QEMU does: the view stays A > H > S, exactly
 * consistent, and a later commit (idempotent, A and H untouched) still has everything.
 * <p>
 * <b>Control operations</b> run on one control thread at a time (synchronized; never on an I/O thread) and
 * every wait has a deadline. The secondary owns the overlay storages (closed with it), not S.
 */
public final class ReplicationSecondary implements AutoCloseable, ReplicatedDisk
{
    /**
     * H's cluster size for non-shared mode: a 4 KiB forwarded write copies 4 KiB into H, not a 64 KiB cluster.
     * In interleaved runs of bench/replication-overhead.sh that made random writes 1.16-1.83x faster and 1 MiB
     * writes over Aeron 0.82x; it costs H's and the COW filter's bitmaps at one bit per 4 KiB (about 195 MiB per
     * TiB).
     */
    public static final int DEFAULT_HIDDEN_CLUSTER_SIZE = 4096;
    /** Staging buffer of the failover commit: one maximal cluster, the least {@link OverlayCommit} accepts. */
    public static final int COMMIT_BUFFER_BYTES = OverlayDevice.MAX_CLUSTER_SIZE;

    static final String NOT_RUNNING = "block replication is not running";
    static final String RUNNING_OR_DONE = "block replication is running or done";

    private final BlockDevice disk;
    private final OverlayStorage hiddenStorage;
    private final OverlayStorage activeStorage;
    private final int clusterSize;
    private final int hiddenClusterSize;
    private final CowCopy cowCopy;
    private final boolean shared;
    private final int queueDepth;
    private final GatedDevice sink;
    private final GatedDevice view;
    private final ErrorLatch latch = new ErrorLatch();
    private final Arena arena = Arena.ofShared();
    private final AtomicLong committedBytes = new AtomicLong();
    private final AtomicLong commitTotalBytes = new AtomicLong();
    private final CheckpointHistory checkpoints = new CheckpointHistory();

    private OverlayDevice hidden;
    private OverlayDevice active;
    private CowFilter cow;
    private WriteOrderGate sinkOrder;
    private CountDownLatch failoverDone;
    private volatile int failoverResult;
    private volatile ReplicationStage stage = ReplicationStage.NONE;
    private volatile boolean checkpointing;
    private volatile long epoch;

    /**
     * @param disk          S, the secondary disk (shared mode: the shared disk); not owned.
     * @param hiddenStorage storage of H, exactly the size of S; owned from now on.
     * @param activeStorage storage of A, exactly the size of S; owned from now on.
     * @param clusterSize       A's cluster size, the primary's, a power of two in [4 KiB, 1 MiB] (64 KiB as QEMU).
     * @param hiddenClusterSize H's cluster size and the COW unit, a power of two in [4 KiB, clusterSize].
     * @param shared            shared-disk mode.
     * @param queueDepth        requests in flight at most on each of the sink and the view.
     * @param cowCopy           how non-shared mode copies originals from S into H.
     */
    public ReplicationSecondary(
        final BlockDevice disk, final OverlayStorage hiddenStorage, final OverlayStorage activeStorage,
        final int clusterSize, final int hiddenClusterSize, final boolean shared, final int queueDepth,
        final CowCopy cowCopy)
    {
        this.disk = disk;
        this.hiddenStorage = hiddenStorage;
        this.activeStorage = activeStorage;
        this.clusterSize = clusterSize;
        this.hiddenClusterSize = hiddenClusterSize;
        this.cowCopy = cowCopy;
        this.shared = shared;
        this.queueDepth = queueDepth;
        this.sink = new GatedDevice(null, disk.size(), queueDepth, null, Errno.EIO);
        this.view = new GatedDevice(null, disk.size(), queueDepth, null, Errno.EIO);
    }

    /**
     * @return H's cluster size unless told otherwise: {@link #DEFAULT_HIDDEN_CLUSTER_SIZE}, or in shared mode the
     * cluster size, since the primary ships whole clusters and a finer H would only cost memory.
     */
    public static int defaultHiddenClusterSize(final int clusterSize, final boolean shared)
    {
        return shared ? clusterSize : DEFAULT_HIDDEN_CLUSTER_SIZE;
    }

    /** H with the cluster size of A, originals copied through memory (as QEMU). */
    public ReplicationSecondary(
        final BlockDevice disk, final OverlayStorage hiddenStorage, final OverlayStorage activeStorage,
        final int clusterSize, final boolean shared, final int queueDepth)
    {
        this(disk, hiddenStorage, activeStorage, clusterSize, clusterSize, shared, queueDepth, CowCopy.MEMORY);
    }

    /** @return where forwarded writes arrive (the NBD export the primary writes to). */
    public BlockDevice sink()
    {
        return sink;
    }

    /** @return the SVM's disk. */
    public BlockDevice view()
    {
        return view;
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

    /** @return the number of completed checkpoints since start. */
    @Override
    public long epoch()
    {
        return epoch;
    }

    /** @return the operator-facing state. */
    @Override
    public ReplicationState state()
    {
        return ReplicationState.of(stage, checkpointing, latch.isSet());
    }

    /** @return the latched error, or null. */
    public ErrorLatch.LatchedError latchedError()
    {
        return latch.get();
    }

    /** @return the active overlay A, null before start (for status and tests). */
    public OverlayDevice active()
    {
        return active;
    }

    /** @return the hidden overlay H, null before start. */
    public OverlayDevice hidden()
    {
        return hidden;
    }

    /** @return clusters of S copied into H since start; 0 in shared mode, where the primary ships originals. */
    public long cowCopies()
    {
        final CowFilter filter = cow;
        return filter == null ? 0 : filter.copies();
    }

    /** @return of {@link #cowCopies()}, the clusters the kernel copied from S into H (copy_file_range). */
    public long offloadedCowCopies()
    {
        final CowFilter filter = cow;
        return filter == null ? 0 : filter.offloadedCopies();
    }

    /** @return bytes the failover commit has written so far. */
    public long committedBytes()
    {
        return committedBytes.get();
    }

    /** @return bytes the failover commit has to write (union of A and H), known once it started. */
    public long commitTotalBytes()
    {
        return commitTotalBytes.get();
    }

    /** @return durations of the successful checkpoints (for the counters). */
    public CheckpointHistory checkpoints()
    {
        return checkpoints;
    }

    /**
     * Builds the block graphs and starts accepting forwarded writes and SVM I/O, with A and H empty (the
     * implicit first checkpoint) at epoch 0. Accepted without effect after a failover (continuous replication).
     */
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
                return ControlResult.error(Errno.EBUSY, RUNNING_OR_DONE);
            }
            default ->
            {
            }
        }
        if (mode != ReplicationMode.SECONDARY)
        {
            return ControlResult.error(Errno.EINVAL, "mode is " + mode + ", this disk was built as SECONDARY");
        }
        if (hiddenStorage.size() != disk.size() || activeStorage.size() != disk.size())
        {
            return ControlResult.error(Errno.EINVAL, "active (" + activeStorage.size() + " bytes) and hidden (" +
                hiddenStorage.size() + " bytes) must have the length of the secondary disk (" + disk.size() + ")");
        }
        if (Integer.bitCount(clusterSize) != 1 || clusterSize < OverlayDevice.MIN_CLUSTER_SIZE ||
            clusterSize > OverlayDevice.MAX_CLUSTER_SIZE)
        {
            return ControlResult.error(Errno.EINVAL, "cluster size must be a power of two in [4 KiB, 1 MiB]: " +
                clusterSize);
        }
        if (Integer.bitCount(hiddenClusterSize) != 1 || hiddenClusterSize < OverlayDevice.MIN_CLUSTER_SIZE ||
            hiddenClusterSize > clusterSize)
        {
            // Larger than a shipped original (shared mode), H would copy up the rest from the shared disk,
            // which may already hold the primary's new data.
            return ControlResult.error(Errno.EINVAL, "hidden cluster size must be a power of two in [4 KiB, " +
                clusterSize + "]: " + hiddenClusterSize);
        }
        hidden = new OverlayDevice(disk, hiddenStorage, hiddenClusterSize, queueDepth);
        active = new OverlayDevice(hidden, activeStorage, clusterSize, queueDepth);
        if (shared)
        {
            sinkOrder = new WriteOrderGate(hidden, queueDepth);
        }
        else
        {
            cow = new CowFilter(disk, hidden, hidden::makeEmpty, hiddenClusterSize, queueDepth,
                CowFilter.DEFAULT_COPY_BYTES, cowCopy);
            sinkOrder = new WriteOrderGate(cow, queueDepth);
        }
        sink.delegate(sinkOrder);
        view.delegate(active);
        latch.clear();
        epoch = 0;
        stage = ReplicationStage.RUNNING;
        sink.open();
        view.open();
        return ControlResult.OK;
    }

    /**
     * Checkpoint (R3): holds forwarded and SVM I/O and waits until none is in flight, makes A empty, then
     * atomically resets the COW bitmap and makes H empty, advances the epoch and lets I/O go on. The caller
     * (the checkpoint protocol) guarantees the primary has drained its forwarded writes first.
     * <p>
     * A missed deadline while draining changes nothing (ETIMEDOUT, retryable). A failure to make A or H empty
     * (failure case 6) latches the error: the overlays may then hold a mix of epochs, the pair needs failover
     * or resync, and the epoch does not advance.
     *
     * @param timeoutNanos deadline of the whole checkpoint.
     */
    @Override
    public synchronized CheckpointReport checkpoint(final long timeoutNanos)
    {
        final long start = System.nanoTime();
        switch (stage)
        {
            case NONE ->
            {
                return failed(-Errno.EIO, NOT_RUNNING, start, 0, 0);
            }
            case FAILOVER_FAILED ->
            {
                return failed(-Errno.EIO, "failover failed: the overlays are being committed, not checkpointed",
                    start, 0, 0);
            }
            case FAILOVER, DONE ->
            {
                return new CheckpointReport(0, "ignored", epoch, 0, 0, 0, System.nanoTime() - start);
            }
            default ->
            {
            }
        }
        final long deadline = start + timeoutNanos;
        checkpointing = true;
        try
        {
            sink.hold();
            view.hold();
            final boolean idle = sink.awaitIdle(deadline) && view.awaitIdle(deadline);
            final long drained = System.nanoTime();
            if (!idle)
            {
                return failed(-Errno.ETIMEDOUT, "forwarded or SVM I/O did not drain before the deadline " +
                    "(nothing changed; retry)", start, drained - start, 0);
            }
            final int activeResult = ControlWait.run(active::makeEmpty, deadline);
            if (activeResult < 0)
            {
                latch.latch(activeResult, "checkpoint: making the active disk empty failed");
                return failed(activeResult, "making the active disk empty failed", start, drained - start,
                    System.nanoTime() - drained);
            }
            final int hiddenResult = shared ? ControlWait.run(hidden::makeEmpty, deadline) :
                cow.newEpoch(Math.max(0, deadline - System.nanoTime()));
            final long reset = System.nanoTime();
            if (hiddenResult < 0)
            {
                latch.latch(hiddenResult, "checkpoint: making the hidden disk empty failed");
                return failed(hiddenResult, "making the hidden disk empty failed (active already empty)", start,
                    drained - start, reset - drained);
            }
            epoch++;
            checkpoints.record(reset - start);
            return new CheckpointReport(0, "", epoch, drained - start, 0, reset - drained, reset - start);
        }
        finally
        {
            sink.open();
            view.open();
            checkpointing = false;
        }
    }

    /** stop(failover=true) is {@link #failover}, stop(failover=false) is {@link #shutdown} (spec 2.2). */
    @Override
    public ControlResult stop(final boolean failover, final long timeoutNanos)
    {
        return failover ? failover(timeoutNanos) : shutdown(timeoutNanos);
    }

    /**
     * Failover (R4, primary lost): refuses forwarded writes first (ESHUTDOWN, AX-16), waits for those in flight
     * and for SVM writes to finish, then commits A and H into S (A wins) in the background while SVM reads go
     * on and SVM writes are held. On success the view is S itself, the latch is cleared and the stage is DONE;
     * on error the stage is FAILOVER_FAILED with the error latched. No error is latched merely because
     * forwarding stopped (QEMU's spurious latch, spec 3.1). Accepted without effect once failing over or done.
     *
     * @param drainTimeoutNanos deadline for the I/O in flight to finish before the commit starts.
     * @return OK once the commit started; see {@link #awaitFailover} for its end.
     */
    public synchronized ControlResult failover(final long drainTimeoutNanos)
    {
        switch (stage)
        {
            case FAILOVER, DONE ->
            {
                return ControlResult.IGNORED;
            }
            case NONE, FAILOVER_FAILED ->
            {
                return ControlResult.error(Errno.EIO, NOT_RUNNING);
            }
            default ->
            {
            }
        }
        final long deadline = System.nanoTime() + drainTimeoutNanos;
        sink.refuse(Errno.ESHUTDOWN);
        view.hold();
        failoverDone = new CountDownLatch(1);
        if (!sink.awaitIdle(deadline) || !view.awaitIdle(deadline))
        {
            // Forwarding stays closed (the primary is gone); S may still change under a hung forwarded write,
            // so committing now could be overwritten: fail the failover and keep the SVM running on A > H > S.
            commitEnded(-Errno.ETIMEDOUT);
            return ControlResult.error(Errno.ETIMEDOUT, "I/O in flight did not drain before the deadline; " +
                "failover failed, the SVM runs on the overlays");
        }
        stage = ReplicationStage.FAILOVER;
        view.holdWrites();
        committedBytes.set(0);
        final OverlayCommit commit = new OverlayCommit(active, arena.allocate(COMMIT_BUFFER_BYTES, 4096),
            (done, total) ->
            {
                // Plain progress counters for status; ordered by the volatile sets.
                commitTotalBytes.set(total);
                committedBytes.set(done);
            });
        commitTotalBytes.set(commit.pendingBytes());
        final IoCompletion onCommitted = (ignored, result) -> commitEnded(result);
        commit.start(onCommitted, 0);
        return ControlResult.OK;
    }

    /**
     * Waits for the failover commit to end.
     *
     * @return 0 when committed (stage DONE), the commit's error (stage FAILOVER_FAILED), -ETIMEDOUT if still
     * running at the deadline, or -EINVAL if no failover was started.
     */
    public int awaitFailover(final long timeoutNanos)
    {
        final CountDownLatch done = failoverDone;
        if (done == null)
        {
            return -Errno.EINVAL;
        }
        try
        {
            return done.await(timeoutNanos, TimeUnit.NANOSECONDS) ? failoverResult : -Errno.ETIMEDOUT;
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            return -Errno.ETIMEDOUT;
        }
    }

    /**
     * stop(failover=false), "shutdown" (stricter than QEMU, AX-07): refuses forwarded writes, drains, makes A and
     * H empty, so the SVM view is S; stage DONE, no error latched. In shared mode the view is refused
     * afterwards (the shared disk belongs to the primary alone). A missed drain deadline changes nothing.
     */
    public synchronized ControlResult shutdown(final long timeoutNanos)
    {
        switch (stage)
        {
            case FAILOVER, DONE ->
            {
                return ControlResult.IGNORED;
            }
            case NONE, FAILOVER_FAILED ->
            {
                return ControlResult.error(Errno.EIO, NOT_RUNNING);
            }
            default ->
            {
            }
        }
        final long deadline = System.nanoTime() + timeoutNanos;
        sink.hold();
        view.hold();
        if (!sink.awaitIdle(deadline) || !view.awaitIdle(deadline))
        {
            sink.open();
            view.open();
            return ControlResult.error(Errno.ETIMEDOUT, "I/O in flight did not drain before the deadline " +
                "(nothing changed; retry)");
        }
        final int activeResult = ControlWait.run(active::makeEmpty, deadline);
        final int hiddenResult = activeResult < 0 ? activeResult : shared ?
            ControlWait.run(hidden::makeEmpty, deadline) : cow.newEpoch(Math.max(0, deadline - System.nanoTime()));
        sink.refuse(Errno.ESHUTDOWN);
        if (hiddenResult < 0)
        {
            latch.latch(hiddenResult, "stop: making the overlays empty failed");
            view.open();
            stage = ReplicationStage.DONE;
            return ControlResult.error(hiddenResult, "making the overlays empty failed; the SVM view still " +
                "holds overlay data");
        }
        if (shared)
        {
            view.refuse(Errno.ESHUTDOWN);
        }
        else
        {
            view.delegate(disk);
            view.open();
        }
        stage = ReplicationStage.DONE;
        return ControlResult.OK;
    }

    /** get-error: EIO with the reason if an error is latched; an error too before start. */
    @Override
    public ControlResult getError()
    {
        if (stage == ReplicationStage.NONE)
        {
            return ControlResult.error(Errno.EIO, NOT_RUNNING);
        }
        final ErrorLatch.LatchedError error = latch.get();
        return error == null ? ControlResult.OK : ControlResult.error(error.errno(), error.reason());
    }

    /**
     * Duty cycle: resumes requests of the overlays, the COW filter and the sink's order gate waiting for
     * back-pressure to ease.
     */
    public int doWork()
    {
        int work = 0;
        final CowFilter filter = cow;
        if (filter != null)
        {
            work += filter.doWork();
        }
        final OverlayDevice a = active;
        if (a != null)
        {
            work += a.doWork() + hidden.doWork();
        }
        final WriteOrderGate order = sinkOrder;
        if (order != null)
        {
            work += order.doWork();
        }
        return work;
    }

    /** Refuses all I/O, completes what is in flight, closes the overlays (and their storage). */
    @Override
    public synchronized void close()
    {
        sink.refuse(Errno.ESHUTDOWN);
        view.refuse(Errno.ESHUTDOWN);
        if (failoverDone != null && stage == ReplicationStage.FAILOVER)
        {
            awaitFailover(TimeUnit.SECONDS.toNanos(30));
        }
        if (cow != null)
        {
            cow.close();
        }
        if (active != null)
        {
            active.close();
            hidden.close();
        }
        else
        {
            activeStorage.close();
            hiddenStorage.close();
        }
        arena.close();
    }

    private void commitEnded(final int result)
    {
        if (result < 0)
        {
            latch.latch(result, "failover commit into the secondary disk failed");
            stage = ReplicationStage.FAILOVER_FAILED;
        }
        else
        {
            view.delegate(disk);
            latch.clear();
            stage = ReplicationStage.DONE;
        }
        // Reads in flight on A > H > S finish there; both chains hold the same bytes now.
        view.open();
        failoverResult = result;
        failoverDone.countDown();
    }

    private CheckpointReport failed(
        final int result, final String reason, final long start, final long drainNanos, final long resetNanos)
    {
        return new CheckpointReport(result, reason, epoch, drainNanos, 0, resetNanos, System.nanoTime() - start);
    }
}
