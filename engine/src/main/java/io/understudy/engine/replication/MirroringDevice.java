package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import org.agrona.concurrent.ManyToManyConcurrentArrayQueue;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The non-shared primary's write path (spec 1.2, R5): every write-type request goes to the local disk and,
 * concurrently, to the {@link PeerLink}; it completes when both are done, with the <em>local</em> result.
 * The link never fails (it absorbs and reports peer failures), so a local error always reaches the guest
 * (AX-20) and a peer error never does. A failed local write also degrades the pair, since its forwarded twin
 * may have landed on the secondary. Reads are local only (INV-P).
 * <p>
 * <b>Discard is replicated as write-zeroes</b> (without NO_HOLE, so the local file may still punch a hole)
 * on both sides. A plain discard leaves the range "zeroes or old contents", and the two disks could answer
 * differently; zeroing both keeps P and S byte-identical, which a later failover or resync relies on (AX-06).
 * {@link #canDiscard()} reports whether the local disk really releases space.
 * <p>
 * Each request takes a preallocated slot (the cookie below is the slot index) with a two-part countdown. The
 * local part is submitted first (its back-pressure is the caller's); once it is under way the peer part can no
 * longer be refused, so if the link pushes back the slot waits in a bounded retry queue, resubmitted once right
 * after queueing, by {@link #doWork()} (the owner's duty cycle) and after every completion here; no thread spins.
 */
public final class MirroringDevice implements BlockDevice
{
    private static final int OP_WRITE = 1;
    private static final int OP_WRITE_ZEROES = 2;
    private static final int OP_FLUSH = 3;
    static final String REASON_LOCAL_WRITE = "local disk write failed: primary and secondary may differ there";

    private final BlockDevice local;
    private final PeerLink link;
    private final Slot[] slots;
    private final ManyToManyConcurrentArrayQueue<Slot> freeSlots;
    /** Slots whose peer part the link pushed back; at most one entry per slot, so it never overflows. */
    private final ManyToManyConcurrentArrayQueue<Slot> peerRetries;
    private final IoCompletion fromLocal = this::onLocalComplete;
    private final IoCompletion fromPeer = this::onPeerComplete;

    /**
     * @param local      the primary's disk (not owned).
     * @param link       forwarding to the secondary (not owned).
     * @param queueDepth write-type requests in flight at most.
     */
    public MirroringDevice(final BlockDevice local, final PeerLink link, final int queueDepth)
    {
        this.local = local;
        this.link = link;
        this.slots = new Slot[queueDepth];
        this.freeSlots = new ManyToManyConcurrentArrayQueue<>(queueDepth);
        this.peerRetries = new ManyToManyConcurrentArrayQueue<>(queueDepth);
        for (int i = 0; i < queueDepth; i++)
        {
            slots[i] = new Slot(i);
            freeSlots.offer(slots[i]);
        }
    }

    @Override
    public long size()
    {
        return local.size();
    }

    @Override
    public int alignment()
    {
        return Math.max(local.alignment(), link.alignment());
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
        return local.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return mirror(OP_WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return mirror(OP_FLUSH, 0, null, 0, 0, completion, cookie);
    }

    /** Replicated as write-zeroes on both disks (see the class comment). */
    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return mirror(OP_WRITE_ZEROES, offset, null, length, 0, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return mirror(OP_WRITE_ZEROES, offset, null, length, flags, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return local.blockStatus(offset, length, sink);
    }

    /** Closes neither the local disk nor the link. */
    @Override
    public void close()
    {
    }

    private boolean mirror(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        final Slot slot = freeSlots.poll();
        if (slot == null)
        {
            return false;
        }
        slot.completion = completion;
        slot.cookie = cookie;
        slot.op = op;
        slot.offset = offset;
        slot.buffer = buffer;
        slot.length = length;
        slot.flags = flags;
        slot.localResult = 0;
        // Release (volatile set): the fields above are visible to whichever completion thread finishes last.
        slot.remaining.set(2);
        if (!submit(local, op, offset, buffer, length, flags, fromLocal, slot.index))
        {
            slot.completion = null;
            freeSlots.offer(slot);
            return false;
        }
        if (!submitPeer(slot))
        {
            // Queue, then retry once: a completion that freed room in the link before the offer found the queue
            // empty, and it may have been the last one in flight.
            peerRetries.offer(slot);
            doWork();
        }
        return true;
    }

    /**
     * Resubmits peer parts the link pushed back. Call it from the owner's duty cycle.
     *
     * @return the number of peer parts submitted.
     */
    public int doWork()
    {
        int submitted = 0;
        for (int i = peerRetries.size(); i > 0; i--)
        {
            final Slot slot = peerRetries.poll();
            if (slot == null)
            {
                break;
            }
            if (!submitPeer(slot))
            {
                peerRetries.offer(slot);
                break;
            }
            submitted++;
        }
        return submitted;
    }

    private boolean submitPeer(final Slot slot)
    {
        return submit(link, slot.op, slot.offset, slot.buffer, slot.length, slot.flags, fromPeer, slot.index);
    }

    private static boolean submit(
        final BlockDevice device, final int op, final long offset, final MemorySegment buffer, final long length,
        final int flags, final IoCompletion completion, final long cookie)
    {
        return switch (op)
        {
            case OP_WRITE -> device.write(offset, buffer, (int)length, flags, completion, cookie);
            case OP_WRITE_ZEROES -> device.writeZeroes(offset, length, flags, completion, cookie);
            default -> device.flush(completion, cookie);
        };
    }

    private void onLocalComplete(final long index, final int result)
    {
        final Slot slot = slots[(int)index];
        // Plain write, published by the decrement in countDown.
        slot.localResult = result;
        if (result < 0 && slot.op != OP_FLUSH)
        {
            // The peer part ran concurrently and may have landed, so P and S can now differ in this range; the
            // next checkpoint would clear the dirty bitmap over it and hide that for good. Degrade instead: the
            // range stays dirty until a resync. (The guest still gets the local error, AX-20.)
            link.fail(-result, REASON_LOCAL_WRITE);
        }
        countDown(slot);
    }

    private void onPeerComplete(final long index, final int ignored)
    {
        countDown(slots[(int)index]);
    }

    private void countDown(final Slot slot)
    {
        // Acquire-release decrement: the last part sees the other part's result.
        if (slot.remaining.decrementAndGet() == 0)
        {
            final IoCompletion completion = slot.completion;
            final long cookie = slot.cookie;
            final int result = slot.localResult;
            slot.completion = null;
            slot.buffer = null;
            freeSlots.offer(slot);
            completion.onComplete(cookie, result);
        }
        if (!peerRetries.isEmpty())
        {
            doWork();
        }
    }

    /** One mirrored request. */
    private static final class Slot
    {
        private final AtomicInteger remaining = new AtomicInteger();
        private final int index;
        private IoCompletion completion;
        private long cookie;
        private int op;
        private long offset;
        private MemorySegment buffer;
        private long length;
        private int flags;
        private int localResult;

        Slot(final int index)
        {
            this.index = index;
        }
    }
}
