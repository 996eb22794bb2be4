package io.understudy.engine.device;

/**
 * A device that can fill a range of itself from the same range of another device without the bytes passing
 * through this process: copy_file_range(2) between two files, which a file system with shared extents (XFS with
 * reflink, btrfs) turns into sharing the source's blocks and others into a copy inside the kernel. QEMU's
 * block-copy offloads a backup job's copy-before-write the same way.
 * <p>
 * The request follows the {@link BlockDevice} conventions of a write-type request: one completion, 0 or a negated
 * errno, {@code false} for back-pressure. Whether the kernel can copy between two given files shows only when it
 * is tried (two file systems, say), so a caller keeps the copy through memory as its fallback and takes it when a
 * result {@link #isUnsupported}.
 */
public interface CopyOffload
{
    /**
     * @return true if {@link #copyFrom} may be tried with {@code source}; it may still complete with a result that
     * {@link #isUnsupported}.
     */
    boolean canCopyFrom(BlockDevice source);

    /** Makes {@code [offset, offset + length)} of this device hold what the same range of {@code source} holds. */
    boolean copyFrom(BlockDevice source, long offset, long length, IoCompletion completion, long cookie);

    /**
     * @return true if a {@link #copyFrom} result says that this pair of devices (or this range's alignment) cannot
     * be copied in the kernel, rather than that I/O failed: nothing was lost and the copy can go through memory.
     */
    static boolean isUnsupported(final int result)
    {
        return result == -Errno.EXDEV || result == -Errno.EOPNOTSUPP || result == -Errno.ENOSYS ||
            result == -Errno.EINVAL;
    }
}
