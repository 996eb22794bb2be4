package io.understudy.engine.cow;

import io.understudy.engine.bitmap.AtomicBitmap;
import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.concurrent.Waiters;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.CopyOffload;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.overlay.SteppedRequest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Copy-before-write: a device over the device {@code below} (the secondary disk S) that, before any
 * write-type request reaches it, copies the original contents of every cluster the request touches to a
 * {@code target} (the hidden overlay H), at most once per epoch per cluster. "Never overwrite what the target
 * already holds this epoch."
 * <p>
 * <b>Per-cluster state</b> ({@link AtomicBitmap}s): {@code copied} (the target holds this epoch's original;
 * the COW bitmap, inverted) and {@code busy} (a request is copying it). A write takes each not-yet-copied
 * cluster it touches by test-and-set of its busy bit, re-checks {@code copied}, reads the run of clusters from
 * below into its slot's buffer, writes it to the target, and only when that write completed sets
 * {@code copied} and gives up the busy bits. A second write touching a cluster that is being copied parks
 * until the busy bit is released, then sees it copied: two overlapping writes produce exactly one copy, and
 * neither reaches {@code below} before the copy is complete. Only then is the request itself forwarded.
 * <p>
 * <b>Readers of the SVM view (INV-ISO).</b> A reader of the chain A -> H -> S that falls through H to S must
 * never see new data or a half-copied cluster. The copy's write into the target completes only after the
 * target marked the cluster allocated (an {@link io.understudy.engine.overlay.OverlayDevice} sets the bit
 * once the whole cluster is in storage), and the new data is submitted to S only after that completion. A
 * reader that found the cluster unallocated in H and read S validates afterwards: if the cluster became
 * allocated meanwhile it re-reads it from H (see {@code OverlayDevice}). So a fall-through read either ended
 * before the new data could reach S, or is redone from H, which holds the complete original.
 * <p>
 * <b>Copies in the kernel</b> ({@link CowCopy#KERNEL}, on request). When the target can fill itself from
 * {@code below} ({@link CopyOffload}: a hidden overlay in a file over S in a file), a run is copied with one
 * copy_file_range instead of a read into the slot's buffer and a write from it: the bytes never reach this process,
 * and on a file system with shared extents (XFS with reflink, btrfs) H shares S's blocks until S is written. Whether
 * the kernel can copy between the two files shows at the first copy; if it cannot (two file systems, a block
 * device), that run and every later one go through memory, and {@link #copiesOffloaded()} says so. Which is faster
 * depends on the file system and the writes: see {@link CowCopy}.
 * <p>
 * <b>Failure.</b> If the copy fails (read from below or write to the target), the write fails with that
 * error, its busy bits are released and nothing of it was forwarded: the device below is unchanged and the
 * cluster stays eligible for copying. Runs of the same request copied before the failure stay copied: they
 * hold true originals. Failures are counted ({@link #copyFailures()}).
 * <p>
 * <b>Durability.</b> {@link #flush} flushes the target, then the device below, so originals are durable no
 * later than the data that replaced them; a FUA write that copied something flushes the target before it
 * is forwarded. (Without a flush, write-back of the device below may still overtake the target's: crash
 * consistency of a persistent target needs the flush discipline of the replication layer.)
 * <p>
 * <b>Epochs.</b> {@link #newEpoch} closes a gate for new write-type requests (they see back-pressure), waits
 * with a deadline until none is in flight, then empties the target and clears {@code copied}, and opens the
 * gate: no write can fall between the reset of the COW bitmap and the emptying of the target. Reads and
 * flushes pass at all times.
 */
public final class CowFilter implements BlockDevice
{
    /** Empties the COW target at a new epoch, e.g. {@code hiddenOverlay::makeEmpty}. */
    @FunctionalInterface
    public interface TargetReset
    {
        boolean reset(IoCompletion completion, long cookie);
    }

    public static final int DEFAULT_QUEUE_DEPTH = 32;
    /** Copies are batched up to this many bytes (whole clusters) per read/write pair. */
    public static final int DEFAULT_COPY_BYTES = 256 * 1024;

    private static final long QUIESCE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(50);

    private static final int OP_WRITE = 1;
    private static final int OP_WRITE_ZEROES = 2;
    private static final int OP_DISCARD = 3;
    private static final int OP_FLUSH = 4;

    private static final int IO_COPY_READ = 1;
    private static final int IO_COPY_WRITE = 2;
    private static final int IO_FORWARD = 3;
    private static final int IO_FLUSH_TARGET = 4;
    private static final int IO_FLUSH_BELOW = 5;
    private static final int IO_FUA_FLUSH_TARGET = 6;
    private static final int IO_COPY_OFFLOAD = 7;

    private final BlockDevice below;
    private final BlockDevice target;
    private final TargetReset targetReset;
    /** The target, when it can copy from {@code below} in the kernel; null otherwise. */
    private final CopyOffload copyOffload;
    /** Set when the kernel refused a copy between the two: every copy goes through memory from then on. */
    private volatile boolean copyOffloadRefused;
    private final int clusterShift;
    private final int clusterSize;
    private final long size;
    private final long clusterCount;
    private final int copyClusters;
    /** This epoch's COW bitmap; swapped with {@link #spareCopied} (always clear) at a new epoch. */
    private volatile AtomicBitmap copied;
    private AtomicBitmap spareCopied;
    private final AtomicBitmap busy;
    private final Arena arena = Arena.ofShared();
    private final Request[] requests;
    private final IndexStack freeRequests;
    private final Waiters<SteppedRequest> waiting;
    private final AtomicInteger writesInFlight = new AtomicInteger();
    private final AtomicBoolean epochChanging = new AtomicBoolean();
    private final AtomicLong copies = new AtomicLong();
    private final AtomicLong copyFailures = new AtomicLong();
    private final AtomicLong offloadedCopies = new AtomicLong();
    /** Write-type requests are admitted only while open (Dekker pair with {@link #writesInFlight}). */
    private volatile boolean gateOpen = true;
    /** Set when a target reset timed out: the target's state is unknown, so every write fails. */
    private volatile boolean broken;
    private volatile boolean closed;
    private volatile long epoch;

    /**
     * @param below       the device written through (not owned).
     * @param target      where originals go, at least {@code below.size()} bytes (not owned).
     * @param targetReset empties the target at a new epoch.
     * @param clusterSize COW granularity, a power of two >= 512.
     * @param queueDepth  write-type requests in flight at most.
     * @param copyBytes   largest copy per read/write pair (rounded up to whole clusters); memory per slot.
     * @param copy        how originals reach the target.
     */
    public CowFilter(
        final BlockDevice below, final BlockDevice target, final TargetReset targetReset, final int clusterSize,
        final int queueDepth, final int copyBytes, final CowCopy copy)
    {
        if (Integer.bitCount(clusterSize) != 1 || clusterSize < 512)
        {
            throw new IllegalArgumentException("clusterSize must be a power of two >= 512: " + clusterSize);
        }
        if (target.size() < below.size())
        {
            throw new IllegalArgumentException("target (" + target.size() + " bytes) is smaller than the device (" +
                below.size() + ")");
        }
        this.below = below;
        this.target = target;
        this.targetReset = targetReset;
        this.copyOffload = copy == CowCopy.KERNEL && target instanceof CopyOffload copies &&
            copies.canCopyFrom(below) ? copies : null;
        this.clusterSize = clusterSize;
        this.clusterShift = Integer.numberOfTrailingZeros(clusterSize);
        this.size = below.size();
        this.clusterCount = Math.max(1, (size + clusterSize - 1) >>> clusterShift);
        this.copyClusters = Math.max(1, (copyBytes + clusterSize - 1) >>> clusterShift);
        this.copied = new AtomicBitmap(clusterCount);
        this.spareCopied = new AtomicBitmap(clusterCount);
        this.busy = new AtomicBitmap(clusterCount);
        this.requests = new Request[queueDepth];
        this.freeRequests = new IndexStack(queueDepth);
        this.waiting = new Waiters<>(queueDepth);
        final long slotBytes = (long)copyClusters << clusterShift;
        final MemorySegment scratch = arena.allocate(slotBytes * queueDepth, 4096);
        for (int i = 0; i < queueDepth; i++)
        {
            requests[i] = new Request(i, scratch.asSlice(i * slotBytes, slotBytes));
        }
    }

    public CowFilter(
        final BlockDevice below, final BlockDevice target, final TargetReset targetReset, final int clusterSize)
    {
        this(below, target, targetReset, clusterSize, DEFAULT_QUEUE_DEPTH, DEFAULT_COPY_BYTES, CowCopy.MEMORY);
    }

    /** @return the current epoch, 0 at start, incremented by each successful {@link #newEpoch}. */
    public long epoch()
    {
        return epoch;
    }

    /** @return clusters copied to the target since the filter was created. */
    public long copies()
    {
        return copies.get();
    }

    /** @return copies that failed (each failed the write that triggered it). */
    public long copyFailures()
    {
        return copyFailures.get();
    }

    /** @return clusters of {@link #copies()} that the kernel copied ({@link CopyOffload}). */
    public long offloadedCopies()
    {
        return offloadedCopies.get();
    }

    /** @return true while copies go to the kernel: the target can copy from below, and has not refused to. */
    public boolean copiesOffloaded()
    {
        return copyOffload != null && !copyOffloadRefused;
    }

    /** @return false while a new epoch holds write-type requests back (they see back-pressure). */
    public boolean isAcceptingWrites()
    {
        return gateOpen;
    }

    /** @return true if the cluster holding {@code offset} was copied in this epoch. */
    public boolean isCopied(final long offset)
    {
        return copied.get(offset >>> clusterShift);
    }

    public int clusterSize()
    {
        return clusterSize;
    }

    @Override
    public long size()
    {
        return size;
    }

    @Override
    public int alignment()
    {
        return Math.max(below.alignment(), target.alignment());
    }

    @Override
    public boolean isReadOnly()
    {
        return below.isReadOnly();
    }

    @Override
    public boolean canDiscard()
    {
        return below.canDiscard();
    }

    @Override
    public boolean canFastZero()
    {
        return below.canFastZero();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return below.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return submit(OP_WRITE, offset, buffer, length, flags, completion, cookie);
    }

    /** Flushes the target (originals first), then the device below. */
    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return submit(OP_FLUSH, 0, null, 0, 0, completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return submit(OP_DISCARD, offset, null, length, 0, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return submit(OP_WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return below.blockStatus(offset, length, sink);
    }

    /**
     * Starts a new epoch: quiesces write-type requests, empties the target, clears the COW bitmap. Blocks the
     * calling (control) thread for at most {@code timeoutNanos}; never call it from a completion.
     *
     * @return 0, or a negated errno: ETIMEDOUT if writes did not drain in time (nothing changed), EBUSY if
     * another epoch change runs, the target reset's error (nothing changed on this filter), or EIO if the
     * target reset did not answer in time (the filter is then broken: writes fail from now on).
     */
    public int newEpoch(final long timeoutNanos)
    {
        if (!epochChanging.compareAndSet(false, true))
        {
            return -Errno.EBUSY;
        }
        try
        {
            final long deadline = System.nanoTime() + timeoutNanos;
            // Volatile write, then volatile reads of the in-flight count: pairs with submit(), which
            // increments before reading the gate, so each write is either refused or waited for.
            gateOpen = false;
            while (writesInFlight.get() > 0)
            {
                if (System.nanoTime() - deadline >= 0)
                {
                    gateOpen = true;
                    return -Errno.ETIMEDOUT;
                }
                waiting.drain();
                LockSupport.parkNanos(QUIESCE_POLL_NANOS);
            }
            final CountDownLatch done = new CountDownLatch(1);
            final int[] result = {0};
            final IoCompletion onReset = (cookie, rc) ->
            {
                result[0] = rc;
                done.countDown();
            };
            while (!targetReset.reset(onReset, 0))
            {
                if (System.nanoTime() - deadline >= 0)
                {
                    gateOpen = true;
                    return -Errno.ETIMEDOUT;
                }
                LockSupport.parkNanos(QUIESCE_POLL_NANOS);
            }
            if (!done.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS))
            {
                // The target may or may not be emptied later: clearing the COW bitmap could let a cluster
                // be copied twice or not at all, keeping the old one would be as wrong. Refuse writes.
                broken = true;
                gateOpen = true;
                return -Errno.EIO;
            }
            if (result[0] < 0)
            {
                gateOpen = true;
                return result[0];
            }
            // Swap in the clear spare: constant time while writes are held back. Clearing the old bitmap (cost
            // follows the dirty part) happens after the gate is open; no request can reach it any more.
            final AtomicBitmap previous = copied;
            copied = spareCopied;
            spareCopied = previous;
            epoch++;
            gateOpen = true;
            previous.clearAll();
            return 0;
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            broken = true;
            gateOpen = true;
            return -Errno.EIO;
        }
        finally
        {
            epochChanging.set(false);
        }
    }

    /** Retries requests that wait for back-pressure below to ease; call it from the owner's duty cycle. */
    public int doWork()
    {
        return waiting.drain();
    }

    /** Completes in-flight requests, then frees the bitmaps and buffers; closes neither below nor target. */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        while (writesInFlight.get() > 0)
        {
            waiting.drain();
            LockSupport.parkNanos(QUIESCE_POLL_NANOS);
        }
        copied.close();
        spareCopied.close();
        busy.close();
        arena.close();
    }

    private boolean submit(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        writesInFlight.incrementAndGet();
        int invalid = 0;
        if (closed)
        {
            invalid = -Errno.ESHUTDOWN;
        }
        else if (broken)
        {
            invalid = -Errno.EIO;
        }
        else if (op != OP_FLUSH && below.isReadOnly())
        {
            invalid = -Errno.EPERM;
        }
        else if (op != OP_FLUSH && (offset < 0 || length < 0 || offset > size || length > size - offset))
        {
            invalid = op == OP_DISCARD ? -Errno.EINVAL : -Errno.ENOSPC;
        }
        else if (op == OP_WRITE && buffer.byteSize() < length)
        {
            invalid = -Errno.EINVAL;
        }
        if (invalid < 0)
        {
            writesInFlight.decrementAndGet();
            completion.onComplete(cookie, invalid);
            return true;
        }
        if (!gateOpen)
        {
            writesInFlight.decrementAndGet();
            return false;
        }
        final int slot = freeRequests.pop();
        if (slot == IndexStack.EMPTY)
        {
            writesInFlight.decrementAndGet();
            return false;
        }
        requests[slot].start(op, offset, buffer, length, flags, completion, cookie);
        return true;
    }

    /** One request slot: copies what must be copied, then forwards the request. */
    private final class Request extends SteppedRequest
    {
        private final MemorySegment scratch;

        private int op;
        private long offset;
        private long length;
        private int flags;
        private MemorySegment buffer;
        private IoCompletion completion;
        private long cookie;

        /** Next cluster to check for copying; past lastCluster once every cluster is copied. */
        private long cluster;
        private long lastCluster;
        private long heldFrom;
        private long heldTo;
        private int result;
        private boolean forwarded;
        /** A FUA write that copied something flushes the target first: originals are durable before the data. */
        private boolean targetFlushPending;

        Request(final int slot, final MemorySegment scratch)
        {
            super(waiting, slot);
            this.scratch = scratch;
        }

        void start(
            final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
            final IoCompletion completion, final long cookie)
        {
            this.op = op;
            this.offset = offset;
            this.length = length;
            this.flags = flags;
            this.buffer = buffer;
            this.completion = completion;
            this.cookie = cookie;
            this.result = 0;
            this.forwarded = false;
            this.targetFlushPending = false;
            this.io = IO_NONE;
            if (op == OP_FLUSH || length == 0)
            {
                this.cluster = 1;
                this.lastCluster = 0;
            }
            else
            {
                // The request widened to whole COW clusters.
                this.cluster = offset >>> clusterShift;
                this.lastCluster = (offset + length - 1) >>> clusterShift;
            }
            run();
        }

        @Override
        protected boolean isDone()
        {
            return result < 0 || forwarded;
        }

        @Override
        protected void wakeWaiters()
        {
            waiting.signal();
        }

        @Override
        protected int plan()
        {
            while (cluster <= lastCluster && copied.get(cluster))
            {
                cluster++;
            }
            if (cluster > lastCluster)
            {
                io = op == OP_FLUSH ? IO_FLUSH_TARGET : targetFlushPending ? IO_FUA_FLUSH_TARGET : IO_FORWARD;
                return STEP_ASYNC;
            }
            if (!busy.testAndSet(cluster))
            {
                return STEP_BLOCKED; // another request is copying it: once it is done we find it copied
            }
            if (copied.get(cluster))
            {
                busy.testAndClear(cluster);
                waiting.signal();
                return STEP_CONTINUE;
            }
            // Batch the following clusters that still need a copy and that nobody else copies.
            long next = cluster + 1;
            while (next <= lastCluster && next - cluster < copyClusters && !copied.get(next) && busy.testAndSet(next))
            {
                if (copied.get(next))
                {
                    busy.testAndClear(next);
                    waiting.signal();
                    break;
                }
                next++;
            }
            heldFrom = cluster;
            heldTo = next;
            io = copiesOffloaded() ? IO_COPY_OFFLOAD : IO_COPY_READ;
            return STEP_ASYNC;
        }

        @Override
        protected boolean submitIo()
        {
            final long start = heldFrom << clusterShift;
            final int copyLength = (int)(Math.min(size, heldTo << clusterShift) - start);
            return switch (io)
            {
                case IO_COPY_READ -> below.read(start, scratch, copyLength, this, 0);
                case IO_COPY_WRITE -> target.write(start, scratch, copyLength, 0, this, 0);
                case IO_COPY_OFFLOAD -> copyOffload.copyFrom(below, start, copyLength, this, 0);
                case IO_FORWARD -> switch (op)
                {
                    case OP_WRITE -> below.write(offset, buffer, (int)length, flags, this, 0);
                    case OP_WRITE_ZEROES -> below.writeZeroes(offset, length, flags, this, 0);
                    default -> below.discard(offset, length, this, 0);
                };
                case IO_FLUSH_TARGET, IO_FUA_FLUSH_TARGET -> target.flush(this, 0);
                case IO_FLUSH_BELOW -> below.flush(this, 0);
                default -> throw new IllegalStateException("no sub-request planned: " + io);
            };
        }

        @Override
        protected void completed(final int ioResult)
        {
            final int completedIo = io;
            io = IO_NONE;
            if (ioResult < 0 && completedIo == IO_COPY_OFFLOAD && CopyOffload.isUnsupported(ioResult))
            {
                // Not an I/O error: the kernel cannot copy between these two. The held clusters are copied
                // through memory now, and so is every later run.
                copyOffloadRefused = true;
                io = IO_COPY_READ;
                return;
            }
            if (ioResult < 0)
            {
                result = ioResult;
                if (completedIo == IO_COPY_READ || completedIo == IO_COPY_WRITE || completedIo == IO_COPY_OFFLOAD)
                {
                    copyFailures.incrementAndGet();
                    releaseHeld();
                }
                return;
            }
            switch (completedIo)
            {
                case IO_COPY_READ -> io = IO_COPY_WRITE;
                case IO_COPY_WRITE, IO_COPY_OFFLOAD ->
                {
                    if (completedIo == IO_COPY_OFFLOAD)
                    {
                        offloadedCopies.addAndGet(heldTo - heldFrom);
                    }
                    // The target holds the originals (and, for an overlay target, has marked them allocated):
                    // only now may anyone write these clusters below.
                    copied.setRange(heldFrom, heldTo);
                    copies.addAndGet(heldTo - heldFrom);
                    cluster = heldTo;
                    targetFlushPending = (flags & FLAG_FUA) != 0;
                    releaseHeld();
                }
                case IO_FUA_FLUSH_TARGET -> targetFlushPending = false;
                case IO_FLUSH_TARGET -> io = IO_FLUSH_BELOW;
                case IO_FORWARD, IO_FLUSH_BELOW ->
                {
                    result = ioResult;
                    forwarded = true;
                }
                default -> throw new IllegalStateException("unexpected completion of " + completedIo);
            }
        }

        private void releaseHeld()
        {
            busy.clearRange(heldFrom, heldTo);
            heldFrom = 0;
            heldTo = 0;
            waiting.signal();
        }

        @Override
        protected void finish()
        {
            final IoCompletion completion = this.completion;
            final long cookie = this.cookie;
            final int outcome = result;
            this.completion = null;
            this.buffer = null;
            freeRequests.push(slot());
            writesInFlight.decrementAndGet();
            completion.onComplete(cookie, outcome);
        }
    }
}
