package io.understudy.engine.io;

/** Which asynchronous file I/O backend to use. */
public enum IoMode
{
    /** io_uring when the startup probe succeeds and the file benefits from it, else {@link #THREADS}. */
    AUTO,
    /** io_uring through the FFM API; fails if the kernel or container refuses io_uring. */
    URING,
    /** Positional FileChannel I/O on a small thread pool; works everywhere. */
    THREADS
}
