package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;

/**
 * Where an {@link OverlayDevice} keeps the clusters it holds, addressed with the same offsets as the disk
 * it shadows. Whether a range holds anything meaningful is the overlay's business (its allocation bitmap):
 * storage only moves bytes and gives space back.
 * <p>
 * The asynchronous conventions are those of {@link io.understudy.engine.device.BlockDevice}: caller-owned
 * buffers, one completion per accepted request with {@code >= 0} or a negated errno, {@code false} for
 * back-pressure (nothing started). Offsets and lengths are always within {@link #size()}.
 */
public interface OverlayStorage extends AutoCloseable
{
    /** @return addressable bytes, at least the size of the disk the overlay shadows. */
    long size();

    /** @return alignment that offsets, lengths and buffers must honour (1 = any). */
    int alignment();

    boolean read(long offset, MemorySegment buffer, int length, IoCompletion completion, long cookie);

    boolean write(long offset, MemorySegment buffer, int length, IoCompletion completion, long cookie);

    /** Gives the space of the range back; afterwards its contents are unspecified until written again. */
    boolean release(long offset, long length, IoCompletion completion, long cookie);

    /**
     * @return true if {@link #copyFrom} may be tried with {@code source}, the overlay's backing: see
     * {@link io.understudy.engine.device.CopyOffload}.
     */
    default boolean canCopyFrom(final BlockDevice source)
    {
        return false;
    }

    /**
     * Fills {@code [offset, offset + length)} with the same range of {@code source}, in the kernel
     * ({@link io.understudy.engine.device.CopyOffload#copyFrom}); storage that cannot answers EOPNOTSUPP.
     */
    default boolean copyFrom(
        final BlockDevice source, final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, -Errno.EOPNOTSUPP);
        return true;
    }

    /** Makes every completed write durable (a no-op for volatile storage). */
    boolean flush(IoCompletion completion, long cookie);

    /** Releases everything; no request may be in flight. */
    @Override
    void close();
}
