package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;

/**
 * A fixed-size block device with an asynchronous, submission/completion interface in the style of
 * io_uring: callers submit many requests and are called back once per request when it completes.
 * <p>
 * Contract shared by every implementation (files through either I/O backend, overlays, remote devices):
 * <ul>
 *   <li><b>No allocation per request.</b> Buffers are supplied by the caller (normally slices of a
 *   {@link io.understudy.engine.io.BufferPool}); a request is identified by the caller's {@code cookie},
 *   echoed to the completion. A submit method returns {@code false} when the device has no free request
 *   slot (back-pressure); nothing was started and the caller retries later.</li>
 *   <li><b>Completion results</b> follow the kernel convention: {@code >= 0} is success (bytes transferred
 *   for read/write, 0 otherwise), {@code < 0} is a negated {@link Errno} value. Every accepted request
 *   completes exactly once, including when the device is closed while it is in flight
 *   ({@link Errno#ESHUTDOWN}).</li>
 *   <li><b>Buffer lifetime.</b> The device reads or writes {@code buffer[0, length)} until the completion is
 *   delivered; the caller must not release or reuse the buffer before that.</li>
 *   <li><b>Range checks.</b> Requests outside {@code [0, size())} are refused through the completion
 *   without touching data: reads, discards and cache hints with {@link Errno#EINVAL}, writes and
 *   write-zeroes with {@link Errno#ENOSPC} (nothing of an out-of-range write is applied).</li>
 *   <li><b>Durability.</b> A write completes once its data is visible to later reads; it is on stable
 *   storage only after a later {@link #flush} completes, or at once when submitted with
 *   {@link #FLAG_FUA}. A flush covers every write that had completed before the flush was submitted.</li>
 *   <li><b>Threads.</b> Submit methods may be called from any thread. Completions arrive on a device
 *   thread; they must not block.</li>
 * </ul>
 */
public interface BlockDevice extends AutoCloseable
{
    /** Write flag: the data is on stable storage when the request completes (forced unit access). */
    int FLAG_FUA = 1;
    /** Write-zeroes flag: the range must stay allocated (no hole may be punched). */
    int FLAG_NO_HOLE = 2;
    /** Write-zeroes flag: fail fast with {@link Errno#ENOTSUP} unless zeroing is cheaper than writing. */
    int FLAG_FAST_ZERO = 4;

    /** @return size in bytes, fixed for the device's lifetime. */
    long size();

    /** @return alignment, in bytes, that offsets, lengths and buffer addresses must honour (1 = any). */
    int alignment();

    /** @return true if every write-type request fails with {@link Errno#EPERM}. */
    boolean isReadOnly();

    /** @return true if {@link #discard} can really release space (else it succeeds as a no-op). */
    boolean canDiscard();

    /** @return true if {@link #writeZeroes} with {@link #FLAG_FAST_ZERO} can succeed (a hole punch). */
    boolean canFastZero();

    boolean read(long offset, MemorySegment buffer, int length, IoCompletion completion, long cookie);

    boolean write(long offset, MemorySegment buffer, int length, int flags, IoCompletion completion, long cookie);

    boolean flush(IoCompletion completion, long cookie);

    /** Releases the range; afterwards it reads back as zeroes or as its old contents (unspecified). */
    boolean discard(long offset, long length, IoCompletion completion, long cookie);

    /** Makes the range read back as zeroes; {@code flags} may hold FUA, NO_HOLE and FAST_ZERO. */
    boolean writeZeroes(long offset, long length, int flags, IoCompletion completion, long cookie);

    /**
     * Describes the allocation of {@code [offset, offset + length)} synchronously, as consecutive extents
     * starting at {@code offset}. Implementations may stop early (at least one extent is reported for a
     * non-empty in-range request) and may report a coarser answer than the truth: "allocated data" is
     * always a correct answer.
     *
     * @return the number of bytes described, or a negated {@link Errno} value.
     */
    long blockStatus(long offset, long length, ExtentSink sink);

    /**
     * Completes in-flight requests (each exactly once, successfully or with an error) and releases the
     * device's resources. Blocks at most until in-flight requests are done.
     */
    @Override
    void close();
}
