package io.understudy.engine.device;

/** Receives consecutive extents from {@link BlockDevice#blockStatus}. */
@FunctionalInterface
public interface ExtentSink
{
    /** The extent is not allocated on its device (reads fall through or read as zeroes). */
    int HOLE = 1;
    /** The extent reads as zeroes. */
    int ZERO = 2;

    /**
     * @param length bytes in this extent, {@code > 0}.
     * @param flags  a combination of {@link #HOLE} and {@link #ZERO}; 0 means allocated data.
     * @return false to stop the walk early.
     */
    boolean onExtent(long length, int flags);
}
