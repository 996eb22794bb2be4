package io.understudy.engine.overlay;

import io.understudy.engine.bitmap.AtomicBitmap;
import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.concurrent.Waiters;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.CopyOffload;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A copy-on-write layer over a backing device: the clusters written through it live in its
 * {@link OverlayStorage}, everything else reads through to the backing (which may itself be an overlay, so
 * chains of any depth work: active > hidden > disk). The backing is never written, except by an
 * {@link OverlayCommit}.
 * <p>
 * <b>Per-cluster state</b>, three {@link AtomicBitmap}s of one bit per cluster:
 * <pre>
 *   allocated  the storage holds the cluster's complete current content; reads take it from here
 *   busy       one request owns the cluster while making it allocated (copy-up or whole-cluster write)
 *   releasing  dropped by make-empty, storage not yet given back; a write claims it instead
 * </pre>
 * <b>Partial writes copy up.</b> A write that covers part of an unallocated cluster first reads the whole
 * cluster from the backing into a per-request scratch buffer, merges the new bytes in and writes the
 * cluster to storage; only then is the cluster marked allocated. Sub-cluster validity tracking was not
 * chosen: it would make every read a merge of two layers and the bitmap clusters-times-sectors large,
 * whereas copy-up keeps reads one-layer-per-cluster, and the copy cost falls on the first write of a
 * cluster only. Ownership of the {@code busy} bit serialises copy-up per cluster: a second writer to the
 * same unallocated cluster (partial or whole) waits until the first has marked it allocated, then writes
 * into storage directly; without that, a copy-up could write stale backing bytes over a concurrent
 * whole-cluster write that already completed.
 * <p>
 * <b>Reads that fall through are validated.</b> After a range read from the backing completes, the read
 * checks whether any of its clusters became allocated here meanwhile; if so it reads again from that
 * cluster on. This is what keeps a COW target consistent for its readers (INV-ISO): a
 * {@link io.understudy.engine.cow.CowFilter} writes a cluster's original into this overlay, which marks it
 * allocated when that write completes, and only then lets new data reach the backing. A read that saw the
 * cluster unallocated and then returned new backing data would have to have read the backing after the
 * backing write started, hence after the allocated bit was set (volatile write, then the submission of the
 * backing write; the kernel orders the page-cache write before any read that observes it), so the
 * validation sees the bit and re-reads the original from storage. If the validation finds nothing, no
 * backing write to those clusters had started before the read finished.
 * <p>
 * <b>make-empty</b> ({@link #makeEmpty}) turns the allocated set into the releasing set, so reads right after
 * it go to the backing; a chain driven by the owner's duty cycle ({@link #doWork}) gives the storage back
 * (hole punch for files, chunk free for memory) and clears the releasing bits, starting a release delay after
 * the make-empty ({@link #DEFAULT_RELEASE_DELAY_NANOS}). A write to a dropped cluster does not wait for that:
 * it claims the cluster from the chain and overwrites its storage whole; only a write to a cluster whose punch
 * is in flight waits for it. When the previous release has finished, the two bitmaps simply swap roles
 * (constant time on the checkpoint path, the clearing happens in the background as the storage is released);
 * otherwise the allocated bits are drained into the releasing set in one walk of the dirty part. It requires
 * the device to be quiescent (no request in flight): reads in flight could otherwise be served from storage
 * being freed.
 * <p>
 * <b>Durability.</b> A write with {@link #FLAG_FUA} ends with a storage flush; {@link #flush} flushes the
 * storage only (the backing is never written outside a commit, which flushes it itself).
 * <p>
 * <b>Asynchrony.</b> Each accepted request takes one of {@code queueDepth} preallocated slots (with a scratch
 * cluster buffer) and runs as a small state machine, one sub-request at a time, resumed by the sub-request's
 * completion on whatever thread delivers it; no thread ever waits. A request that must wait (for a busy or
 * releasing cluster, or because a device below pushed back) parks itself ({@link Waiters}) until a
 * completion here resumes it; if the devices below are saturated by others while nothing of ours is in
 * flight, only the owner's duty cycle calling {@link #doWork()} retries it. Splitting a request over layers slices the caller's buffer, which allocates a
 * segment view; a request served by one layer allocates nothing.
 * <p>
 * The overlay owns its storage (closed with it), not its backing.
 */
public final class OverlayDevice implements BlockDevice, CopyOffload
{
    public static final int MIN_CLUSTER_SIZE = 4096;
    public static final int MAX_CLUSTER_SIZE = 1 << 20;
    public static final int DEFAULT_QUEUE_DEPTH = 64;
    /**
     * How long dropped clusters wait before their release starts. Meanwhile the writes of the next epoch claim
     * the clusters they dirty again and overwrite their storage in place; a release that came first would punch
     * the hole and the write would then allocate (and zero) the pages again. With a checkpoint a second, 4 KiB
     * random writes at queue depth 32 measured 1.2-1.7x the IOPS of an immediate release (500 ms against 0, two
     * interleaved rounds per transport; single rounds of 250 ms and 2 s were no better). Storage is given back
     * at most this much later.
     */
    public static final long DEFAULT_RELEASE_DELAY_NANOS = TimeUnit.MILLISECONDS.toNanos(500);

    private static final long CLOSE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(100);
    private static final int ZERO_BYTES = 1 << 20;
    private static final MemorySegment ZEROES = Arena.global().allocate(ZERO_BYTES, 4096);

    private static final int OP_READ = 1;
    private static final int OP_WRITE = 2;
    private static final int OP_WRITE_ZEROES = 3;
    private static final int OP_FLUSH = 4;
    private static final int OP_COPY_UP = 5;

    private static final int IO_READ_STORAGE = 1;
    private static final int IO_READ_BACKING = 2;
    private static final int IO_WRITE_STORAGE = 3;
    private static final int IO_COPY_READ = 4;
    private static final int IO_COPY_WRITE = 5;
    private static final int IO_FRESH_WRITE = 6;
    private static final int IO_FLUSH = 7;
    private static final int IO_COPY_IN = 8;

    private static final int GUARD_IDLE = 0;
    private static final int GUARD_SUBMITTING = 1;
    private static final int GUARD_COMPLETED_EARLY = 2;
    private static final int GUARD_AWAITING = 3;

    private final BlockDevice backing;
    private final OverlayStorage storage;
    private final int clusterSize;
    private final int clusterShift;
    private final long size;
    private final long clusterCount;
    /** Swapped with {@link #releasing} by make-empty (volatile: read afresh by every use). */
    private volatile AtomicBitmap allocated;
    private final AtomicBitmap busy;
    private volatile AtomicBitmap releasing;
    private final Arena arena = Arena.ofShared();
    private final Request[] requests;
    private final IndexStack freeRequests;
    private final Waiters<SteppedRequest> waiting;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final Releaser releaser = new Releaser();
    private final long releaseDelayNanos;
    /** When make-empty last filled an empty releasing set: its release starts {@link #releaseDelayNanos} later. */
    private volatile long droppedAtNanos;
    private volatile boolean closed;

    /**
     * @param backing     the device read through for unallocated clusters; not owned.
     * @param storage     where allocated clusters live, at least {@code backing.size()} bytes; owned.
     * @param clusterSize allocation unit, a power of two in [{@value #MIN_CLUSTER_SIZE},
     *                    {@value #MAX_CLUSTER_SIZE}].
     * @param queueDepth  requests in flight at most; each slot has a scratch buffer of one cluster.
     */
    public OverlayDevice(
        final BlockDevice backing, final OverlayStorage storage, final int clusterSize, final int queueDepth)
    {
        this(backing, storage, clusterSize, queueDepth, DEFAULT_RELEASE_DELAY_NANOS);
    }

    /**
     * @param releaseDelayNanos how long after a make-empty the release of its clusters starts (0: at the next
     *                          duty cycle); see {@link #DEFAULT_RELEASE_DELAY_NANOS}.
     */
    public OverlayDevice(
        final BlockDevice backing, final OverlayStorage storage, final int clusterSize, final int queueDepth,
        final long releaseDelayNanos)
    {
        if (Integer.bitCount(clusterSize) != 1 || clusterSize < MIN_CLUSTER_SIZE || clusterSize > MAX_CLUSTER_SIZE)
        {
            throw new IllegalArgumentException("clusterSize must be a power of two in [4 KiB, 1 MiB]: " + clusterSize);
        }
        if (storage.size() < backing.size())
        {
            throw new IllegalArgumentException(
                "storage (" + storage.size() + " bytes) is smaller than the backing (" + backing.size() + ")");
        }
        if (queueDepth < 1)
        {
            throw new IllegalArgumentException("queueDepth must be positive: " + queueDepth);
        }
        if (releaseDelayNanos < 0)
        {
            throw new IllegalArgumentException("releaseDelayNanos must not be negative: " + releaseDelayNanos);
        }
        this.releaseDelayNanos = releaseDelayNanos;
        this.backing = backing;
        this.storage = storage;
        this.clusterSize = clusterSize;
        this.clusterShift = Integer.numberOfTrailingZeros(clusterSize);
        this.size = backing.size();
        this.clusterCount = Math.max(1, (size + clusterSize - 1) >>> clusterShift);
        this.allocated = new AtomicBitmap(clusterCount);
        this.busy = new AtomicBitmap(clusterCount);
        this.releasing = new AtomicBitmap(clusterCount);
        this.requests = new Request[queueDepth];
        this.freeRequests = new IndexStack(queueDepth);
        this.waiting = new Waiters<>(queueDepth);
        final MemorySegment scratch = arena.allocate((long)clusterSize * queueDepth, 4096);
        for (int i = 0; i < queueDepth; i++)
        {
            requests[i] = new Request(i, scratch.asSlice((long)i * clusterSize, clusterSize));
        }
    }

    public OverlayDevice(final BlockDevice backing, final OverlayStorage storage, final int clusterSize)
    {
        this(backing, storage, clusterSize, DEFAULT_QUEUE_DEPTH);
    }

    public BlockDevice backing()
    {
        return backing;
    }

    public int clusterSize()
    {
        return clusterSize;
    }

    /** @return true if this layer holds the cluster containing {@code offset}. */
    public boolean isAllocated(final long offset)
    {
        return allocated.get(offset >>> clusterShift);
    }

    /** @return start of the first cluster at or after the one holding {@code offset} held here, or -1. */
    public long nextAllocated(final long offset)
    {
        final long cluster = offset >= size ? -1 : allocated.nextSetBit(offset >>> clusterShift);
        return cluster < 0 ? -1 : cluster << clusterShift;
    }

    /** @return start of the first cluster at or after the one holding {@code offset} not held here, or size. */
    public long nextUnallocated(final long offset)
    {
        final long cluster = offset >= size ? -1 : allocated.nextClearBit(offset >>> clusterShift);
        return cluster < 0 ? size : Math.min(size, cluster << clusterShift);
    }

    /** @return bytes held by this layer (whole clusters). */
    public long allocatedBytes()
    {
        return allocated.cardinality() << clusterShift;
    }

    @Override
    public long size()
    {
        return size;
    }

    @Override
    public int alignment()
    {
        return Math.max(backing.alignment(), storage.alignment());
    }

    @Override
    public boolean isReadOnly()
    {
        return false;
    }

    /** Discard is accepted as a no-op: dropping a cluster would expose the backing's older contents. */
    @Override
    public boolean canDiscard()
    {
        return false;
    }

    @Override
    public boolean canFastZero()
    {
        return false;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return submit(OP_READ, offset, buffer, length, 0, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return submit(OP_WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return submit(OP_FLUSH, 0, null, 0, 0, completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (closed)
        {
            completion.onComplete(cookie, -Errno.ESHUTDOWN);
        }
        else
        {
            completion.onComplete(cookie, offset < 0 || length < 0 || offset > size || length > size - offset ?
                -Errno.EINVAL : 0);
        }
        return true;
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        if ((flags & FLAG_FAST_ZERO) != 0)
        {
            completion.onComplete(cookie, -Errno.ENOTSUP);
            return true;
        }
        return submit(OP_WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    /** @return true if {@code source} is the backing and storage can copy from it in the kernel. */
    @Override
    public boolean canCopyFrom(final BlockDevice source)
    {
        return source == backing && storage.canCopyFrom(backing);
    }

    /**
     * Copies up {@code [offset, offset + length)} from the backing without the bytes passing through this process:
     * each cluster of the range that this layer does not hold is filled by storage from the backing
     * ({@link OverlayStorage#copyFrom}) and marked allocated once it is complete, as a whole-cluster write would be;
     * clusters this layer holds are kept. A {@link io.understudy.engine.cow.CowFilter} saves originals into a
     * hidden overlay this way, and the reader's guarantees (INV-ISO) are those of its writes.
     * <p>
     * The range must be whole clusters (EINVAL otherwise), {@code source} the backing and the storage able to copy
     * from it (EOPNOTSUPP otherwise).
     */
    @Override
    public boolean copyFrom(
        final BlockDevice source, final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (!canCopyFrom(source))
        {
            completion.onComplete(cookie, -Errno.EOPNOTSUPP);
            return true;
        }
        final long end = offset + length;
        if ((offset & (clusterSize - 1)) != 0 || ((end & (clusterSize - 1)) != 0 && end != size))
        {
            completion.onComplete(cookie, -Errno.EINVAL);
            return true;
        }
        return submit(OP_COPY_UP, offset, null, length, 0, completion, cookie);
    }

    /**
     * Reports this layer's clusters as data and asks the backing about the rest, so holes are the ranges no
     * layer of the chain holds.
     */
    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        if (offset < 0 || length <= 0 || offset > size || length > size - offset)
        {
            return -Errno.EINVAL;
        }
        final long end = offset + length;
        final boolean[] stopped = new boolean[1];
        final ExtentSink tracking = (extentLength, flags) ->
        {
            final boolean more = sink.onExtent(extentLength, flags);
            stopped[0] = !more;
            return more;
        };
        long position = offset;
        while (position < end && !stopped[0])
        {
            final long cluster = position >>> clusterShift;
            if (allocated.get(cluster))
            {
                final long runEnd = Math.min(end, nextUnallocated(position));
                tracking.onExtent(runEnd - position, 0);
                position = runEnd;
            }
            else
            {
                final long next = nextAllocated(position);
                final long runEnd = next < 0 ? end : Math.min(end, next);
                final long wanted = runEnd - position;
                final long described = backing.blockStatus(position, wanted, tracking);
                if (described < 0)
                {
                    return position == offset ? described : position - offset;
                }
                position += described;
                if (described < wanted)
                {
                    break;
                }
            }
        }
        return position - offset;
    }

    /**
     * Drops every cluster of this layer: afterwards all reads go to the backing. Storage is given back in the
     * background; reads and writes are correct at once. Fails with EBUSY, changing nothing, if a request is
     * in flight (the caller must quiesce the device first).
     */
    public boolean makeEmpty(final IoCompletion completion, final long cookie)
    {
        if (closed)
        {
            completion.onComplete(cookie, -Errno.ESHUTDOWN);
            return true;
        }
        if (inFlight.get() > 0)
        {
            completion.onComplete(cookie, -Errno.EBUSY);
            return true;
        }
        // Never blocks on I/O: the releaser holds the monitor only to retire an empty releasing set.
        synchronized (releaser)
        {
            final AtomicBitmap dropped = allocated;
            final AtomicBitmap spare = releasing;
            if (!releaser.active.get() && spare.isEmpty())
            {
                // No release runs and none can start (only make-empty fills the releasing set): swap roles.
                // Releasing first, so that no instant shows a dropped cluster as neither allocated nor releasing.
                droppedAtNanos = System.nanoTime();
                releasing = dropped;
                allocated = spare;
            }
            else
            {
                // One walk of the dirty part: allocated bits move to releasing (disjoint sets, see Request.plan).
                dropped.drainTo(spare);
            }
        }
        // The release starts at the owner's next duty cycle (doWork), not here: with inline storage I/O the
        // chain would punch every dropped cluster on this thread, inside the checkpoint that holds all writes.
        completion.onComplete(cookie, 0);
        return true;
    }

    /** @return true while storage dropped by make-empty is still being given back. */
    public boolean isReleasing()
    {
        return !releasing.isEmpty();
    }

    /**
     * Retries requests that wait for back-pressure below to ease, and a stalled release. Call it from the
     * owner's duty cycle.
     *
     * @return the number of waiting requests that went on (see {@link Waiters#drain}).
     */
    public int doWork()
    {
        releaser.kick();
        return waiting.drain();
    }

    /** Completes in-flight requests, waits for the background release, then closes storage and bitmaps. */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        while (inFlight.get() > 0 || releaser.active.get())
        {
            doWork();
            LockSupport.parkNanos(CLOSE_POLL_NANOS);
        }
        storage.close();
        allocated.close();
        busy.close();
        releasing.close();
        arena.close();
    }

    private boolean submit(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        // Counted before the closed check, as in the file devices: close() sets closed, then waits for this.
        inFlight.incrementAndGet();
        int invalid = 0;
        if (closed)
        {
            invalid = -Errno.ESHUTDOWN;
        }
        else if (op != OP_FLUSH && (offset < 0 || length < 0 || offset > size || length > size - offset))
        {
            invalid = op == OP_READ ? -Errno.EINVAL : -Errno.ENOSPC;
        }
        else if ((op == OP_READ || op == OP_WRITE) && buffer.byteSize() < length)
        {
            invalid = -Errno.EINVAL;
        }
        if (invalid < 0)
        {
            inFlight.decrementAndGet();
            completion.onComplete(cookie, invalid);
            return true;
        }
        final int slot = freeRequests.pop();
        if (slot == IndexStack.EMPTY)
        {
            inFlight.decrementAndGet();
            return false;
        }
        requests[slot].start(op, offset, buffer, length, flags, completion, cookie);
        return true;
    }

    private void signal()
    {
        if (releaser.stalled)
        {
            releaser.kick();
        }
        waiting.signal();
    }

    /** One request slot: a state machine that issues one sub-request at a time. */
    private final class Request extends SteppedRequest
    {
        private final MemorySegment scratch;

        private int op;
        private long offset;
        private long end;
        private MemorySegment buffer;
        private IoCompletion completion;
        private long cookie;

        private long position;
        private int result;
        private boolean flushPending;
        private long ioStart;
        private long ioEnd;
        /** Clusters [heldFrom, heldTo) whose busy bit this request owns. */
        private long heldFrom;
        private long heldTo;

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
            // FUA: the data must be on stable storage at completion, so the write ends with a storage flush.
            this.flushPending = op == OP_FLUSH || (flags & FLAG_FUA) != 0;
            this.offset = offset;
            this.end = op == OP_FLUSH ? 0 : offset + length;
            this.position = op == OP_FLUSH ? 0 : offset;
            this.buffer = buffer;
            this.completion = completion;
            this.cookie = cookie;
            this.result = 0;
            this.io = IO_NONE;
            this.heldFrom = 0;
            this.heldTo = 0;
            run();
        }

        @Override
        protected boolean isDone()
        {
            return result < 0 || (position >= end && !flushPending);
        }

        @Override
        protected void wakeWaiters()
        {
            signal();
        }

        /** Chooses the next sub-request for {@code position}. @return STEP_ASYNC when one was chosen. */
        @Override
        protected int plan()
        {
            if (position >= end)
            {
                return choose(IO_FLUSH, 0, 0);
            }
            final long cluster = position >>> clusterShift;
            if (allocated.get(cluster))
            {
                final long runEnd = Math.min(end, nextUnallocated(position));
                if (op == OP_COPY_UP)
                {
                    position = runEnd; // what this layer holds is newer than the backing: keep it
                    return STEP_CONTINUE;
                }
                return choose(op == OP_READ ? IO_READ_STORAGE : IO_WRITE_STORAGE, position, capZeroes(runEnd));
            }
            if (op == OP_READ)
            {
                final long next = nextAllocated(position);
                return choose(IO_READ_BACKING, position, next < 0 ? end : Math.min(end, next));
            }
            if (!busy.testAndSet(cluster))
            {
                return STEP_BLOCKED; // wait for the request making it allocated, or for its hole punch
            }
            // Re-check under ownership: the previous owner may have just allocated it.
            if (allocated.get(cluster))
            {
                busy.testAndClear(cluster);
                signal();
                return STEP_CONTINUE;
            }
            claimFromRelease(cluster);
            final long clusterStart = cluster << clusterShift;
            final long clusterEnd = Math.min(size, clusterStart + clusterSize);
            heldFrom = cluster;
            if (position == clusterStart && end >= clusterEnd)
            {
                // Whole unallocated clusters need no copy: take as many consecutive ones as we can.
                long next = cluster + 1;
                while (next < clusterCount && Math.min(size, (next + 1) << clusterShift) <= end &&
                    ((next + 1) << clusterShift) - position <= maxRun() && !allocated.get(next) &&
                    busy.testAndSet(next))
                {
                    if (allocated.get(next))
                    {
                        busy.testAndClear(next);
                        signal();
                        break;
                    }
                    claimFromRelease(next);
                    next++;
                }
                heldTo = next;
                final int fill = op == OP_COPY_UP ? IO_COPY_IN : IO_FRESH_WRITE;
                return choose(fill, position, Math.min(size, next << clusterShift));
            }
            heldTo = cluster + 1;
            return choose(IO_COPY_READ, clusterStart, clusterEnd);
        }

        /**
         * Takes a cluster that make-empty dropped away from the release chain, so that this write need not wait
         * for its hole punch: we own its {@code busy} bit, which the chain also takes before punching, and we
         * write the whole cluster (fresh or copied up) before it becomes allocated, so its old storage is
         * overwritten rather than given back. Allocated and releasing are never both set.
         */
        private void claimFromRelease(final long cluster)
        {
            releasing.testAndClear(cluster);
        }

        private int choose(final int io, final long start, final long end)
        {
            this.io = io;
            this.ioStart = start;
            this.ioEnd = end;
            return STEP_ASYNC;
        }

        private long capZeroes(final long runEnd)
        {
            return op == OP_WRITE_ZEROES ? Math.min(runEnd, position + ZERO_BYTES) : runEnd;
        }

        private long maxRun()
        {
            return op == OP_WRITE_ZEROES ? ZERO_BYTES : Long.MAX_VALUE;
        }

        @Override
        protected boolean submitIo()
        {
            final int length = (int)(ioEnd - ioStart);
            return switch (io)
            {
                case IO_READ_STORAGE -> storage.read(ioStart, slice(ioStart, length), length, this, 0);
                case IO_READ_BACKING -> backing.read(ioStart, slice(ioStart, length), length, this, 0);
                case IO_WRITE_STORAGE, IO_FRESH_WRITE -> storage.write(ioStart, source(ioStart, length), length, this, 0);
                case IO_COPY_READ -> backing.read(ioStart, scratch, length, this, 0);
                case IO_COPY_WRITE -> storage.write(ioStart, scratch, length, this, 0);
                case IO_COPY_IN -> storage.copyFrom(backing, ioStart, ioEnd - ioStart, this, 0);
                case IO_FLUSH -> storage.flush(this, 0);
                default -> throw new IllegalStateException("no sub-request planned: " + io);
            };
        }

        @Override
        protected void completed(final int ioResult)
        {
            final int completedIo = io;
            io = IO_NONE;
            if (ioResult < 0)
            {
                result = ioResult;
                releaseHeld();
                return;
            }
            switch (completedIo)
            {
                case IO_READ_STORAGE, IO_WRITE_STORAGE -> position = ioEnd;
                case IO_READ_BACKING ->
                {
                    // Validation (see the class comment): a cluster allocated while we read the backing is read
                    // again from storage, from the first such cluster on.
                    final long first = allocated.nextSetBit(ioStart >>> clusterShift);
                    final boolean raced = first >= 0 && first <= (ioEnd - 1) >>> clusterShift;
                    position = raced ? Math.max(ioStart, first << clusterShift) : ioEnd;
                }
                case IO_COPY_READ ->
                {
                    final long clusterStart = ioStart;
                    final long mergeEnd = Math.min(end, ioEnd);
                    final long n = mergeEnd - position;
                    if (op == OP_WRITE_ZEROES)
                    {
                        scratch.asSlice(position - clusterStart, n).fill((byte)0);
                    }
                    else
                    {
                        MemorySegment.copy(buffer, position - offset, scratch, position - clusterStart, n);
                    }
                    io = IO_COPY_WRITE;
                    position = mergeEnd;
                }
                case IO_COPY_WRITE, IO_FRESH_WRITE, IO_COPY_IN ->
                {
                    // The allocated bit is set only now that storage holds the whole cluster (volatile write:
                    // a reader that sees it reads complete data), then ownership is given up.
                    allocated.setRange(heldFrom, heldTo);
                    if (completedIo != IO_COPY_WRITE)
                    {
                        position = ioEnd;
                    }
                    releaseHeld();
                }
                case IO_FLUSH ->
                {
                    flushPending = false;
                    position = end;
                }
                default -> throw new IllegalStateException("unexpected completion of " + completedIo);
            }
        }

        private void releaseHeld()
        {
            if (heldTo > heldFrom)
            {
                busy.clearRange(heldFrom, heldTo);
                heldFrom = 0;
                heldTo = 0;
                signal();
            }
        }

        private MemorySegment slice(final long start, final int length)
        {
            // The sub-request carries its length, so the caller's buffer serves as-is when the offsets agree.
            return start == offset ? buffer : buffer.asSlice(start - offset, length);
        }

        private MemorySegment source(final long start, final int length)
        {
            return op == OP_WRITE_ZEROES ? ZEROES : slice(start, length);
        }

        @Override
        protected void finish()
        {
            final IoCompletion completion = this.completion;
            final long cookie = this.cookie;
            final int outcome = result < 0 ? result : op == OP_READ || op == OP_WRITE ? (int)(end - offset) : 0;
            this.completion = null;
            this.buffer = null;
            // Recycle the slot and leave the in-flight count before the callback, so that the callback may
            // resubmit or make the device empty.
            freeRequests.push(slot());
            inFlight.decrementAndGet();
            completion.onComplete(cookie, outcome);
        }
    }

    /**
     * Gives back the storage of clusters dropped by make-empty, one run at a time, clearing their releasing
     * bits as it goes. At most one chain runs ({@link #active}). Before punching a run the chain takes each
     * cluster's {@code busy} bit, the ownership writers take too: a write that owns a dropped cluster first
     * claims it ({@code Request.claimFromRelease}) and the chain skips it; a write to a cluster being punched
     * waits for the punch. A chain gives back at most {@value #RUNS_PER_TURN} runs per turn and then pauses
     * until the next duty cycle, so that inline storage I/O never holds the owner's thread for a whole set.
     */
    private final class Releaser implements IoCompletion
    {
        private static final int RUNS_PER_TURN = 64;

        private final AtomicBoolean active = new AtomicBoolean();
        /** A running chain that gave up its turn: the next {@link #kick} resumes it (whoever wins the CAS). */
        private final AtomicBoolean paused = new AtomicBoolean();
        /** The storage pushed back: retried at the next completion here or {@link #doWork()}. */
        private volatile boolean stalled;
        private final AtomicInteger guard = new AtomicInteger();
        /** Where the next scan starts: the end of the last run given back, so a chain walks the set once. */
        private long cursor;
        private long from;
        private long to;

        void kick()
        {
            if (paused.get() && paused.compareAndSet(true, false))
            {
                run();
                return;
            }
            // A running chain goes on from its own completions. The active check comes first because the scan
            // costs a walk of every word dirtied since the last clear-all, and the duty cycle calls this often.
            if (!active.get() && isDueForRelease() && !releasing.isEmpty() && active.compareAndSet(false, true))
            {
                stalled = false;
                cursor = 0;
                run();
            }
        }

        private boolean isDueForRelease()
        {
            return releaseDelayNanos == 0 || System.nanoTime() - droppedAtNanos >= releaseDelayNanos;
        }

        private void run()
        {
            int runs = 0;
            while (true)
            {
                if (runs++ == RUNS_PER_TURN)
                {
                    paused.set(true);
                    return;
                }
                final long first = releasing.nextSetBit(cursor);
                if (first < 0 && cursor > 0)
                {
                    // Wrap once, at the next turn: a make-empty may have added clusters behind the cursor, and a
                    // cluster skipped because a write owned it is claimed by that write in a moment.
                    cursor = 0;
                    paused.set(true);
                    return;
                }
                if (first < 0)
                {
                    synchronized (this)
                    {
                        // Range clears leave summary bits behind; reset them before this bitmap can become the
                        // allocated set again, unless a make-empty has just drained new bits into it.
                        if (releasing.nextSetBit(0) >= 0)
                        {
                            continue;
                        }
                        releasing.clearAll();
                        active.set(false);
                    }
                    // A make-empty may have added clusters after our scan and seen us still active.
                    if (releasing.isEmpty() || !active.compareAndSet(false, true))
                    {
                        return;
                    }
                    continue;
                }
                if (!take(first))
                {
                    cursor = first + 1; // a write owns it and claims it
                    continue;
                }
                long next = first + 1;
                while (next < clusterCount && take(next))
                {
                    next++;
                }
                from = first;
                to = next;
                guard.set(GUARD_SUBMITTING);
                final long start = from << clusterShift;
                if (!storage.release(start, Math.min(size, to << clusterShift) - start, this, 0))
                {
                    guard.set(GUARD_IDLE);
                    busy.clearRange(from, to);
                    stalled = true;
                    active.set(false);
                    waiting.signal(); // not signal(): that would kick this chain again at once
                    return;
                }
                if (guard.compareAndSet(GUARD_SUBMITTING, GUARD_AWAITING))
                {
                    return;
                }
                guard.set(GUARD_IDLE);
                released();
            }
        }

        /** @return true if the chain now owns a cluster that is still to be released. */
        private boolean take(final long cluster)
        {
            if (!releasing.get(cluster) || !busy.testAndSet(cluster))
            {
                return false;
            }
            if (releasing.get(cluster))
            {
                return true;
            }
            // A write claimed it and gave up ownership between our two reads.
            busy.testAndClear(cluster);
            signal();
            return false;
        }

        @Override
        public void onComplete(final long ignored, final int result)
        {
            if (guard.compareAndSet(GUARD_SUBMITTING, GUARD_COMPLETED_EARLY))
            {
                return;
            }
            released();
            run();
        }

        private void released()
        {
            // A failed hole punch leaves the space used but is harmless for correctness: the clusters are
            // unreachable and are rewritten whole before being read again.
            releasing.clearRange(from, to);
            busy.clearRange(from, to);
            cursor = to;
            signal();
        }
    }
}
