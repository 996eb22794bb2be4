package io.understudy.engine.io.posix;

/** Request types, shared by the backends' request slots. */
public final class Op
{
    public static final int READ = 1;
    public static final int WRITE = 2;
    public static final int FLUSH = 3;
    public static final int DISCARD = 4;
    public static final int WRITE_ZEROES = 5;
    /** Fill a range from the same range of another file, in the kernel. */
    public static final int COPY = 6;

    private Op()
    {
    }
}
