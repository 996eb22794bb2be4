package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A decorator that fails chosen requests of the device below, in the manner of QEMU's blkdebug: "fail the
 * Nth write with EIO", or "fail every flush from the 3rd on with ENOSPC". A failed request never reaches
 * the device below (nothing of it is applied) and completes with the negated errno through the normal
 * completion path, on the submitting thread.
 * <p>
 * Requests are counted per {@link Kind}, from 1, in submission order (the counter is taken atomically, so
 * with several submitting threads "the Nth" is the Nth to pass the counter). Rules are set with
 * {@link #failNth} / {@link #failFrom} / {@link #clear}; they may change while requests are submitted.
 * Everything else (size, flags, block status, close) is delegated unchanged.
 */
public final class FaultInjectingDevice extends ForwardingBlockDevice
{
    /** Request kinds a rule can target. */
    public enum Kind
    {
        READ, WRITE, FLUSH, DISCARD, WRITE_ZEROES
    }

    private static final int KINDS = Kind.values().length;

    private final AtomicLongArray counts = new AtomicLongArray(KINDS);
    /** Per kind: the first request number that fails (0 = none), the last one that fails, and the errno. */
    private final AtomicLongArray firstFailing = new AtomicLongArray(KINDS);
    private final AtomicLongArray lastFailing = new AtomicLongArray(KINDS);
    private final AtomicLongArray errnos = new AtomicLongArray(KINDS);

    public FaultInjectingDevice(final BlockDevice device)
    {
        super(device);
    }

    /** Fails the {@code nth} request of {@code kind} counted from now (1 = the next one) with {@code errno}. */
    public FaultInjectingDevice failNth(final Kind kind, final long nth, final int errno)
    {
        return arm(kind, nth, nth, errno);
    }

    /** Fails every request of {@code kind} from the {@code nth} counted from now on, with {@code errno}. */
    public FaultInjectingDevice failFrom(final Kind kind, final long nth, final int errno)
    {
        return arm(kind, nth, Long.MAX_VALUE, errno);
    }

    /** Removes the rule for {@code kind}. */
    public FaultInjectingDevice clear(final Kind kind)
    {
        firstFailing.set(kind.ordinal(), 0);
        return this;
    }

    /** @return how many requests of {@code kind} were submitted (failed ones included). */
    public long count(final Kind kind)
    {
        return counts.get(kind.ordinal());
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        final int fault = fault(Kind.READ);
        return fault != 0 ? fail(completion, cookie, fault) : device.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        final int fault = fault(Kind.WRITE);
        return fault != 0 ? fail(completion, cookie, fault) :
            device.write(offset, buffer, length, flags, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        final int fault = fault(Kind.FLUSH);
        return fault != 0 ? fail(completion, cookie, fault) : device.flush(completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        final int fault = fault(Kind.DISCARD);
        return fault != 0 ? fail(completion, cookie, fault) : device.discard(offset, length, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        final int fault = fault(Kind.WRITE_ZEROES);
        return fault != 0 ? fail(completion, cookie, fault) :
            device.writeZeroes(offset, length, flags, completion, cookie);
    }

    private FaultInjectingDevice arm(final Kind kind, final long first, final long last, final int errno)
    {
        if (first < 1 || errno <= 0)
        {
            throw new IllegalArgumentException("nth must be >= 1 and errno positive: " + first + ", " + errno);
        }
        final int k = kind.ordinal();
        final long base = counts.get(k);
        // Disarm while the fields change so that a concurrent submitter never sees a half-written rule.
        firstFailing.set(k, 0);
        errnos.set(k, errno);
        lastFailing.set(k, last == Long.MAX_VALUE ? last : base + last);
        firstFailing.set(k, base + first);
        return this;
    }

    /** @return the negated errno this request must fail with, or 0. */
    private int fault(final Kind kind)
    {
        final int k = kind.ordinal();
        final long number = counts.incrementAndGet(k);
        final long first = firstFailing.get(k);
        if (first != 0 && number >= first && number <= lastFailing.get(k))
        {
            return -(int)errnos.get(k);
        }
        return 0;
    }

    private static boolean fail(final IoCompletion completion, final long cookie, final int result)
    {
        completion.onComplete(cookie, result);
        return true;
    }
}
