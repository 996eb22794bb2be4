package io.understudy.engine.replication;

import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The primary's side of forwarding: sends write-type requests to the peer (any transport that looks like a
 * {@link BlockDevice}: the NBD client, later Aeron) with a deadline, and never lets the peer fail or stall the
 * guest (spec R5, AX-18, AX-19).
 * <p>
 * <b>Failure is absorbed and final.</b> A request the peer fails, or does not answer before its deadline,
 * completes towards the caller as if it had succeeded (writes report their length), and the link reports the
 * failure once to its {@link FailureHandler} (the primary latches it and degrades the pair). From the first
 * failure on the link stops forwarding for good: later requests complete at once without reaching the peer,
 * even if the peer answers again, because a silent resumption would leave a gap on the secondary (QEMU's NBD
 * reconnect, spec 5.2). Only the primary's dirty bitmap (every cluster written since the last good
 * checkpoint) can close that gap, through a resync.
 * <p>
 * <b>Deadlines</b> are enforced by {@link #doWork}, the owner's duty cycle, which reads the clock once and
 * scans the slots. Back-pressure from the peer counts too: a peer that refuses every request for longer than
 * the deadline (a transport stuck reconnecting, a full queue that never drains) fails the link like a hung
 * request, so a caller retrying a refused request is never held for longer than that.
 * <p>
 * A request that timed out gives its slot back at once; if the hung peer answers later, the answer carries the
 * old ticket and is dropped. The caller may then reuse its buffer while the hung peer still
 * refers to it: whatever the peer does with it no longer matters, the pair is degraded and the peer must be
 * dropped by its owner.
 * <p>
 * <b>Slot tickets.</b> Each slot has an {@link AtomicLong} ticket, {@code generation << 2 | phase}, with phase
 * IDLE, ARMED (submission under way, immune to timeouts) or PENDING (with the peer, may time out). The peer's
 * cookie is {@code generation << 16 | slot index}. Whoever moves the ticket from ARMED/PENDING back to IDLE
 * with a CAS of the exact ticket (the peer's completion or the timeout) owns the completion of the request;
 * the other one loses the CAS and does nothing, so every request completes exactly once and a late answer
 * can never complete a newer request in the same slot.
 */
public final class PeerLink implements BlockDevice
{
    /** Told once, about the first failure of the link; called on a completion or duty-cycle thread. */
    @FunctionalInterface
    public interface FailureHandler
    {
        void onPeerFailure(int errno, String reason);
    }

    static final String REASON_WRITE = "forwarded write failed";
    static final String REASON_WRITE_ZEROES = "forwarded write-zeroes failed";
    static final String REASON_FLUSH = "forwarded flush failed";
    static final String REASON_TIMEOUT = "peer did not answer a forwarded request before its deadline";
    static final String REASON_REFUSED = "peer refused forwarded requests (back-pressure) beyond the deadline";

    private static final int MAX_SLOTS = 1 << 16;
    private static final long IDLE = 0;
    private static final long ARMED = 1;
    private static final long PENDING = 2;
    private static final long PHASE_MASK = 3;

    private static final int OP_WRITE = 1;
    private static final int OP_WRITE_ZEROES = 2;
    private static final int OP_FLUSH = 3;

    private final BlockDevice peer;
    private final long timeoutNanos;
    private final FailureHandler handler;
    private final Slot[] slots;
    private final IndexStack freeSlots;
    private final IoCompletion fromPeer = this::onPeerComplete;
    private final AtomicLong forwarded = new AtomicLong();
    private final AtomicLong timeouts = new AtomicLong();
    private final AtomicLong forwardedBytes = new AtomicLong();
    /** Bytes of write-type requests with the peer now; the primary's lag behind the secondary. */
    private final AtomicLong unacknowledgedBytes = new AtomicLong();
    /** When the peer started refusing requests without a break ({@link System#nanoTime()}), 0 if it is not. */
    private final AtomicLong refusingSince = new AtomicLong();
    /** Cleared by the first failure or by {@link #drop}; never set again (no silent resumption). */
    private volatile boolean forwarding = true;
    /** Set once, by the first failure or by {@link #drop}: the handler hears about one failure at most. */
    private final AtomicBoolean finished = new AtomicBoolean();

    /**
     * @param peer         the forwarding target (not owned: its transport owner closes it).
     * @param timeoutNanos deadline of every forwarded request.
     * @param queueDepth   forwarded requests in flight at most, up to 65536.
     * @param handler      told about the first failure.
     */
    public PeerLink(final BlockDevice peer, final long timeoutNanos, final int queueDepth, final FailureHandler handler)
    {
        if (queueDepth < 1 || queueDepth > MAX_SLOTS)
        {
            throw new IllegalArgumentException("queueDepth must be in [1, 65536]: " + queueDepth);
        }
        if (timeoutNanos <= 0)
        {
            throw new IllegalArgumentException("timeout must be positive: " + timeoutNanos);
        }
        this.peer = peer;
        this.timeoutNanos = timeoutNanos;
        this.handler = handler;
        this.slots = new Slot[queueDepth];
        this.freeSlots = new IndexStack(queueDepth);
        for (int i = 0; i < queueDepth; i++)
        {
            slots[i] = new Slot(i);
        }
    }

    /** @return true until the first failure or {@link #drop}. */
    public boolean isForwarding()
    {
        return forwarding;
    }

    /** Stops forwarding for good (failover: the secondary is lost); requests in flight still complete. */
    public void drop()
    {
        forwarding = false;
        finished.set(true);
    }

    /** @return requests handed to the peer since creation. */
    public long forwarded()
    {
        return forwarded.get();
    }

    /** @return bytes of the write and write-zeroes requests handed to the peer since creation. */
    public long forwardedBytes()
    {
        return forwardedBytes.get();
    }

    /** @return bytes of write-type requests handed to the peer and not answered nor timed out yet. */
    public long unacknowledgedBytes()
    {
        return unacknowledgedBytes.get();
    }

    /** @return requests that hit their deadline. */
    public long timeouts()
    {
        return timeouts.get();
    }

    /** @return requests with the peer now (not yet answered nor timed out). */
    public int inFlight()
    {
        int count = 0;
        for (final Slot slot : slots)
        {
            if ((slot.ticket.get() & PHASE_MASK) != IDLE)
            {
                count++;
            }
        }
        return count;
    }

    /**
     * Times out requests past their deadline. Call it from the owner's duty cycle.
     *
     * @return the number of requests timed out.
     */
    public int doWork()
    {
        final long now = System.nanoTime();
        int expired = 0;
        for (final Slot slot : slots)
        {
            // Acquire: the deadline was written before the ticket turned PENDING.
            final long ticket = slot.ticket.get();
            if ((ticket & PHASE_MASK) == PENDING && now - slot.deadline >= 0 &&
                slot.ticket.compareAndSet(ticket, ticket & ~PHASE_MASK))
            {
                timeouts.incrementAndGet();
                fail(-Errno.ETIMEDOUT, REASON_TIMEOUT);
                finish(slot, -Errno.ETIMEDOUT);
                expired++;
            }
        }
        return expired;
    }

    @Override
    public long size()
    {
        return peer.size();
    }

    @Override
    public int alignment()
    {
        return peer.alignment();
    }

    @Override
    public boolean isReadOnly()
    {
        return peer.isReadOnly();
    }

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

    /** The peer is never read (INV-P): fails with EIO. */
    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, -Errno.EIO);
        return true;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return forward(OP_WRITE, offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return forward(OP_FLUSH, 0, null, 0, 0, completion, cookie);
    }

    /** Not used by the primary (discard is replicated as write-zeroes); forwarded as write-zeroes. */
    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return forward(OP_WRITE_ZEROES, offset, null, length, 0, completion, cookie);
    }

    /** FAST_ZERO is not passed on: a peer that cannot zero fast must not degrade the pair. */
    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return forward(OP_WRITE_ZEROES, offset, null, length, flags & ~FLAG_FAST_ZERO, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return -Errno.EOPNOTSUPP;
    }

    /** Stops forwarding; does not close the peer (its owner does, which completes what is in flight). */
    @Override
    public void close()
    {
        drop();
    }

    private boolean forward(
        final int op, final long offset, final MemorySegment buffer, final long length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        final int success = op == OP_WRITE ? (int)length : 0;
        if (!forwarding)
        {
            completion.onComplete(cookie, success);
            return true;
        }
        final int index = freeSlots.pop();
        if (index == IndexStack.EMPTY)
        {
            return false;
        }
        final Slot slot = slots[index];
        final long generation = (slot.ticket.get() >>> 2) + 1;
        final long armed = generation << 2 | ARMED;
        slot.completion = completion;
        slot.cookie = cookie;
        slot.success = success;
        slot.op = op;
        final long bytes = op == OP_FLUSH ? 0 : length;
        slot.length = bytes;
        final long now = System.nanoTime();
        slot.deadline = now + timeoutNanos;
        // Volatile write publishes the fields above to the duty cycle and to the peer's completion thread.
        slot.ticket.set(armed);
        final long peerCookie = generation << 16 | slot.index;
        // Counted before the peer sees the request, so a synchronous answer never drives the count below zero.
        // Plain atomic adds: the value is all that matters, nothing else is published through it.
        unacknowledgedBytes.getAndAdd(bytes);
        final boolean accepted = switch (op)
        {
            case OP_WRITE -> peer.write(offset, buffer, (int)length, flags, fromPeer, peerCookie);
            case OP_WRITE_ZEROES -> peer.writeZeroes(offset, length, flags, fromPeer, peerCookie);
            default -> peer.flush(fromPeer, peerCookie);
        };
        if (!accepted)
        {
            // Back-pressure from the peer: nothing started; the caller retries until the refusals outlast the
            // deadline, then the link fails and completes everything at once.
            unacknowledgedBytes.getAndAdd(-bytes);
            slot.completion = null;
            slot.ticket.set(generation << 2 | IDLE);
            freeSlots.push(slot.index);
            return refusedTooLong(now) && forward(op, offset, buffer, length, flags,
                completion, cookie);
        }
        refusingSince.set(0);
        forwarded.incrementAndGet();
        forwardedBytes.getAndAdd(bytes);
        // Fails harmlessly if the peer already answered synchronously.
        slot.ticket.compareAndSet(armed, generation << 2 | PENDING);
        return true;
    }

    /** @return true if the peer has refused every request since before {@code now} minus the deadline. */
    private boolean refusedTooLong(final long now)
    {
        // CAS from 0: the first refusal of a run stamps the time; volatile reads afterwards.
        if (refusingSince.compareAndSet(0, now) || now - refusingSince.get() < timeoutNanos)
        {
            return false;
        }
        timeouts.incrementAndGet();
        fail(-Errno.ETIMEDOUT, REASON_REFUSED);
        return true;
    }

    private void onPeerComplete(final long peerCookie, final int result)
    {
        final Slot slot = slots[(int)(peerCookie & (MAX_SLOTS - 1))];
        final long generation = peerCookie >>> 16;
        while (true)
        {
            final long ticket = slot.ticket.get();
            if (ticket >>> 2 != generation || (ticket & PHASE_MASK) == IDLE)
            {
                return;
            }
            if (slot.ticket.compareAndSet(ticket, generation << 2 | IDLE))
            {
                break;
            }
        }
        if (result < 0)
        {
            fail(result, reason(slot.op));
        }
        finish(slot, result);
    }

    /**
     * Declares the link failed from outside the forwarding path (e.g. the control link lost the peer's
     * heartbeats): forwarding stops for good and the handler hears about it, unless a failure came first.
     */
    public void fail(final int errno, final String reason)
    {
        forwarding = false;
        if (finished.compareAndSet(false, true))
        {
            handler.onPeerFailure(errno, reason);
        }
    }

    private static String reason(final int op)
    {
        return switch (op)
        {
            case OP_WRITE -> REASON_WRITE;
            case OP_WRITE_ZEROES -> REASON_WRITE_ZEROES;
            default -> REASON_FLUSH;
        };
    }

    private void finish(final Slot slot, final int result)
    {
        final IoCompletion completion = slot.completion;
        final long cookie = slot.cookie;
        final int outcome = result < 0 ? slot.success : result;
        unacknowledgedBytes.getAndAdd(-slot.length);
        slot.completion = null;
        freeSlots.push(slot.index);
        completion.onComplete(cookie, outcome);
    }

    /** One forwarded request. */
    private static final class Slot
    {
        private final int index;
        private final AtomicLong ticket = new AtomicLong();
        private IoCompletion completion;
        private long cookie;
        private long deadline;
        private int success;
        private int op;
        private long length;

        Slot(final int index)
        {
            this.index = index;
        }
    }
}
