package io.understudy.aeron;

import io.aeron.Publication;
import io.understudy.engine.concurrent.IndexStack;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import org.agrona.concurrent.UnsafeBuffer;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The primary's forwarding link over Aeron as a {@link BlockDevice}: write, write-zeroes, discard and flush become
 * WRITE (COW_DATA in shared mode), ZEROES, DISCARD and FLUSH messages on the data stream, and each completes when the
 * secondary's ACKs for it arrived (on the link's agent thread, {@link #onAck}). Reads are not forwarded.
 * <p>
 * <b>Slots.</b> {@code queueDepth} request slots are made up front, each with its own header buffer and a payload
 * view that wraps the caller's memory, so a submission copies nothing and allocates nothing: Aeron gathers header
 * and payload into its log. The wire cookie is {@code sequence << 16 | slot index}; the sequence grows each time a
 * slot is reused, so an answer to an older use of the slot is recognised and dropped.
 * <p>
 * <b>Parts.</b> A write longer than {@link #partLength()} (bounded by the publication's largest message) travels
 * as several WRITE messages with the same cookie, each fragmented by Aeron to the MTU and reassembled by the
 * secondary's fragment assembler; the request completes when every part was acknowledged, with the first error
 * or the whole length.
 * <p>
 * <b>Back-pressure never drops data.</b> When the publication is back-pressured (the secondary is slower than the
 * primary and its window is full), the submitting thread waits, up to {@code backPressureWaitNanos}, and the wait
 * is counted. If the first part still cannot go, nothing was started and the submit returns {@code false} (the
 * caller, {@code PeerLink}, retries until its own deadline); a later part of a write under way waits longer
 * ({@code partWaitNanos}: a started write cannot be withdrawn), and only if it still cannot go does the request
 * complete with {@link Errno#EAGAIN}, once the parts already sent are acknowledged.
 * <p>
 * <b>Who completes.</b> The submitter marks a slot submitted after its last part; the agent counts ACKs. Both
 * check "submitted and every sent part acknowledged" after their own volatile write (a Dekker handshake, so one
 * of them sees the other's write), and whoever wins the CAS of the slot's phase from BUSY to IDLE completes it.
 * A lost link fails every submitted request the same way; a request still being submitted is failed by its
 * submitter, which reads {@link #failed} after marking itself done.
 */
final class AeronForwardingDevice implements BlockDevice
{
    private static final int MAX_SLOTS = 1 << 16;
    private static final int IDLE = 0;
    private static final int BUSY = 1;
    private static final int SPINS_BEFORE_PARK = 100;
    private static final long PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(20);
    private static final VarHandle PHASE;

    static
    {
        try
        {
            PHASE = MethodHandles.lookup().findVarHandle(Slot.class, "phase", int.class);
        }
        catch (final ReflectiveOperationException ex)
        {
            throw new ExceptionInInitializerError(ex);
        }
    }

    private final GuardedPublication publication;
    private final long size;
    private final boolean shared;
    private final int partLength;
    private final long backPressureWaitNanos;
    private final long partWaitNanos;
    private final Slot[] slots;
    private final IndexStack freeSlots;
    private final AtomicLong forwarded = new AtomicLong();
    private final AtomicLong acked = new AtomicLong();
    private final AtomicLong messagesSent = new AtomicLong();
    private final AtomicLong backPressureWaits = new AtomicLong();
    private final AtomicLong backPressureNanos = new AtomicLong();
    private final AtomicLong slotsExhausted = new AtomicLong();
    private final AtomicLong unackedBytes = new AtomicLong();
    private final AtomicLong staleAcks = new AtomicLong();
    /** Set once when the link ends; read by every submission (volatile: see the class comment's handshake). */
    private volatile boolean failed;
    private volatile int failErrno = Errno.EIO;

    AeronForwardingDevice(
        final GuardedPublication publication, final long size, final boolean shared, final int queueDepth,
        final int partLength, final long backPressureWaitNanos, final long partWaitNanos)
    {
        if (queueDepth <= 0 || queueDepth > MAX_SLOTS)
        {
            throw new IllegalArgumentException("queue depth must be in [1, " + MAX_SLOTS + "]: " + queueDepth);
        }
        this.publication = publication;
        this.size = size;
        this.shared = shared;
        this.partLength = partLength;
        this.backPressureWaitNanos = backPressureWaitNanos;
        this.partWaitNanos = partWaitNanos;
        this.slots = new Slot[queueDepth];
        this.freeSlots = new IndexStack(queueDepth);
        for (int i = 0; i < queueDepth; i++)
        {
            slots[i] = new Slot(i);
        }
    }

    /** @return the longest WRITE payload of one message. */
    int partLength()
    {
        return partLength;
    }

    /** @return requests forwarded (accepted by a submit). */
    long forwarded()
    {
        return forwarded.get();
    }

    /** @return requests completed by the secondary's acknowledgements. */
    long acked()
    {
        return acked.get();
    }

    /** @return messages put on the data stream (parts count one each). */
    long messagesSent()
    {
        return messagesSent.get();
    }

    /** @return times a submission waited for a back-pressured publication. */
    long backPressureWaits()
    {
        return backPressureWaits.get();
    }

    /** @return nanoseconds submissions spent waiting for back-pressure to clear. */
    long backPressureNanos()
    {
        return backPressureNanos.get();
    }

    /** @return submissions refused because every request slot was in flight. */
    long slotsExhausted()
    {
        return slotsExhausted.get();
    }

    /** @return bytes of forwarded writes not yet completed. */
    long unackedBytes()
    {
        return unackedBytes.get();
    }

    /** @return acknowledgements that matched no request in flight (late answers to an old slot use). */
    long staleAcks()
    {
        return staleAcks.get();
    }

    /** @return requests in flight. */
    int inFlight()
    {
        int busy = 0;
        for (final Slot slot : slots)
        {
            if ((int)PHASE.getVolatile(slot) == BUSY)
            {
                busy++;
            }
        }
        return busy;
    }

    @Override
    public long size()
    {
        return size;
    }

    @Override
    public int alignment()
    {
        return 1;
    }

    @Override
    public boolean isReadOnly()
    {
        return false;
    }

    @Override
    public boolean canDiscard()
    {
        return true;
    }

    @Override
    public boolean canFastZero()
    {
        return false;
    }

    /** The forwarding link carries writes only: reads are served from the primary's own disk. */
    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion,
        final long cookie)
    {
        completion.onComplete(cookie, -Errno.EOPNOTSUPP);
        return true;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        if (length < 0 || buffer.byteSize() < length || (!buffer.isNative() && !(buffer.heapBase().orElse(null)
            instanceof byte[])))
        {
            completion.onComplete(cookie, -Errno.EINVAL);
            return true;
        }
        if (offset < 0 || offset > size - length)
        {
            completion.onComplete(cookie, -Errno.ENOSPC);
            return true;
        }
        return submit(shared ? WireProtocol.COW_DATA : WireProtocol.WRITE, offset, length, flags & FLAG_FUA, buffer,
            length, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return submit(WireProtocol.FLUSH, 0, 0, 0, null, 0, completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (length < 0 || offset < 0 || offset > size - length)
        {
            completion.onComplete(cookie, -Errno.EINVAL);
            return true;
        }
        return submit(WireProtocol.DISCARD, offset, length, 0, null, 0, completion, cookie);
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
        if (length < 0 || offset < 0 || offset > size - length)
        {
            completion.onComplete(cookie, -Errno.ENOSPC);
            return true;
        }
        return submit(WireProtocol.ZEROES, offset, length, flags & (FLAG_FUA | FLAG_NO_HOLE), null, 0, completion,
            cookie);
    }

    /** "Allocated data" is always a correct answer; the secondary's allocation is not the primary's business. */
    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        if (length <= 0 || offset < 0 || offset > size - length)
        {
            return -Errno.EINVAL;
        }
        sink.onExtent(length, 0);
        return length;
    }

    /**
     * Waits (at most {@code timeoutNanos}) for requests in flight, then fails what is left with
     * {@link Errno#ESHUTDOWN}. The link's owner closes the publication afterwards.
     */
    @Override
    public void close()
    {
        close(TimeUnit.SECONDS.toNanos(5));
    }

    void close(final long timeoutNanos)
    {
        final long deadline = System.nanoTime() + timeoutNanos;
        while (inFlight() > 0 && !failed && System.nanoTime() - deadline < 0)
        {
            LockSupport.parkNanos(PARK_NANOS);
        }
        fail(Errno.ESHUTDOWN);
    }

    /**
     * The link ended: every request in flight and every later one completes with {@code -errno}. Idempotent; the
     * first errno stays.
     */
    void fail(final int errno)
    {
        if (!failed)
        {
            failErrno = errno;
            failed = true;
        }
        for (final Slot slot : slots)
        {
            // Volatile read of submitted after the volatile write of failed (the submitter does the reverse).
            if ((int)PHASE.getVolatile(slot) == BUSY && slot.submitted)
            {
                complete(slot, -failErrno);
            }
        }
    }

    /** Agent thread: one ACK arrived for the request part with this wire cookie. */
    void onAck(final long wireCookie, final int result)
    {
        final int index = (int)(wireCookie & 0xFFFF);
        final int sequence = (int)(wireCookie >>> 16);
        if (index >= slots.length)
        {
            staleAcks.incrementAndGet();
            return;
        }
        final Slot slot = slots[index];
        if ((int)PHASE.getVolatile(slot) != BUSY || slot.sequence != sequence)
        {
            staleAcks.incrementAndGet();
            return;
        }
        if (result < 0)
        {
            slot.recordError(result);
        }
        // Only this thread writes acked: the volatile write publishes it to the submitter's check.
        final int ackedParts = slot.ackedParts + 1;
        slot.ackedParts = ackedParts;
        if (slot.submitted && ackedParts == slot.sentParts)
        {
            complete(slot, slot.error != 0 ? slot.error : slot.successResult);
        }
    }

    private boolean submit(
        final int templateId, final long offset, final long length, final int flags, final MemorySegment data,
        final int dataLength, final IoCompletion completion, final long cookie)
    {
        if (failed)
        {
            completion.onComplete(cookie, -failErrno);
            return true;
        }
        final int index = freeSlots.pop();
        if (index == IndexStack.EMPTY)
        {
            slotsExhausted.incrementAndGet();
            return false;
        }
        final Slot slot = slots[index];
        slot.arm(completion, cookie, dataLength, templateId == WireProtocol.WRITE ||
            templateId == WireProtocol.COW_DATA ? dataLength : 0);
        final long wireCookie = ((long)slot.sequence << 16) | slot.index;
        slot.encodeHeader(templateId);
        final int parts = data == null || dataLength == 0 ? 1 : (dataLength + partLength - 1) / partLength;
        int sent = 0;
        for (int part = 0; part < parts; part++)
        {
            final int partOffset = part * partLength;
            final int partBytes = data == null ? 0 : Math.min(partLength, dataLength - partOffset);
            slot.request.encode(wireCookie, data == null ? offset : offset + partOffset,
                data == null ? length : partBytes, flags);
            if (partBytes > 0)
            {
                slot.wrapPayload(data, partOffset, partBytes);
            }
            if (!offer(slot, partBytes, sent == 0 ? backPressureWaitNanos : partWaitNanos))
            {
                break;
            }
            // Volatile write: the agent may already be counting this part's ACK.
            slot.sentParts = ++sent;
        }
        if (sent == 0 && !failed)
        {
            slot.release();
            PHASE.setVolatile(slot, IDLE);
            freeSlots.push(slot.index);
            return false;
        }
        forwarded.incrementAndGet();
        unackedBytes.addAndGet(dataLength);
        if (sent < parts)
        {
            slot.recordError(-Errno.EAGAIN);
        }
        // Volatile write, then volatile reads of failed and ackedParts (the agent writes those, then reads this).
        slot.submitted = true;
        if (failed)
        {
            complete(slot, -failErrno);
        }
        else if (slot.ackedParts == sent)
        {
            complete(slot, slot.error != 0 ? slot.error : slot.successResult);
        }
        return true;
    }

    /** Offers one message, waiting out back-pressure up to the bound; @return true if it is in the log. */
    private boolean offer(final Slot slot, final int payloadBytes, final long maxWaitNanos)
    {
        long waitStart = 0;
        int spins = 0;
        while (true)
        {
            final long position = payloadBytes > 0 ?
                publication.offer(slot.header, 0, Slot.HEADER_BYTES, slot.payload, 0, payloadBytes) :
                publication.offer(slot.header, 0, Slot.HEADER_BYTES);
            if (position > 0)
            {
                messagesSent.incrementAndGet();
                if (waitStart != 0)
                {
                    backPressureNanos.addAndGet(System.nanoTime() - waitStart);
                }
                return true;
            }
            if (position == Publication.CLOSED || position == Publication.MAX_POSITION_EXCEEDED || failed)
            {
                return false;
            }
            final long now = System.nanoTime();
            if (waitStart == 0)
            {
                waitStart = now;
                backPressureWaits.incrementAndGet();
            }
            else if (now - waitStart > maxWaitNanos)
            {
                backPressureNanos.addAndGet(now - waitStart);
                return false;
            }
            if (++spins < SPINS_BEFORE_PARK)
            {
                Thread.onSpinWait();
            }
            else
            {
                LockSupport.parkNanos(PARK_NANOS);
            }
        }
    }

    private void complete(final Slot slot, final int result)
    {
        if (!PHASE.compareAndSet(slot, BUSY, IDLE))
        {
            return;
        }
        final IoCompletion completion = slot.completion;
        final long cookie = slot.cookie;
        unackedBytes.addAndGet(-slot.dataLength);
        if (result >= 0)
        {
            acked.incrementAndGet();
        }
        slot.release();
        freeSlots.push(slot.index);
        completion.onComplete(cookie, result);
    }

    /** One request in flight: the caller's completion, the parts sent and acknowledged, and its wire buffers. */
    private static final class Slot
    {
        static final int HEADER_BYTES = MessageHeader.LENGTH + RequestFlyweight.BLOCK_LENGTH;

        final int index;
        final UnsafeBuffer header = new UnsafeBuffer(new byte[HEADER_BYTES]);
        final UnsafeBuffer payload = new UnsafeBuffer(new byte[0]);
        final MessageHeader messageHeader = new MessageHeader();
        final RequestFlyweight request = new RequestFlyweight();
        /** Grows with each use; written by the submitter before its first offer, read by the agent after. */
        int sequence;
        IoCompletion completion;
        long cookie;
        int dataLength;
        int successResult;
        /** IDLE or BUSY, changed by CAS through {@link #PHASE}: the winner of BUSY -> IDLE completes. */
        @SuppressWarnings("unused")
        volatile int phase;
        volatile int sentParts;
        volatile int ackedParts;
        volatile boolean submitted;
        volatile int error;

        Slot(final int index)
        {
            this.index = index;
            this.sequence = 1;
            this.request.wrap(header, MessageHeader.LENGTH);
        }

        void arm(final IoCompletion completion, final long cookie, final int dataLength, final int successResult)
        {
            this.completion = completion;
            this.cookie = cookie;
            this.dataLength = dataLength;
            this.successResult = successResult;
            this.sentParts = 0;
            this.ackedParts = 0;
            this.submitted = false;
            this.error = 0;
            // Volatile write last: the agent reads phase first, then the fields above.
            this.phase = BUSY;
        }

        void encodeHeader(final int templateId)
        {
            messageHeader.wrap(header, 0).encode(templateId);
        }

        void wrapPayload(final MemorySegment data, final int partOffset, final int partBytes)
        {
            if (data.isNative())
            {
                payload.wrap(data.address() + partOffset, partBytes);
            }
            else
            {
                payload.wrap((byte[])data.heapBase().orElseThrow(), (int)data.address() + partOffset, partBytes);
            }
        }

        void recordError(final int result)
        {
            if (error == 0)
            {
                error = result;
            }
        }

        void release()
        {
            completion = null;
            sequence = (sequence + 1) & 0x7FFF_FFFF;
        }
    }
}
