package io.understudy.engine.io;

import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.io.uring.UringIoEngine;

import java.io.IOException;

/**
 * Every backend configuration the contract suite runs against. Each opens its own engine and buffer pool
 * (the pool's slab is registered with the ring for {@link #URING_FIXED}).
 */
enum Backend
{
    THREADS(false),
    THREADS_INLINE(false),
    THREADS_FLUSHES_OFFLOADED(false),
    THREADS_DIRECT(true),
    URING_BUFFERED(false),
    URING_DIRECT(true),
    URING_FIXED(true);

    /** Buffers handed out by {@link Fixture#pool}: enough for the largest test request. */
    static final int BUFFER_SIZE = 256 * 1024;
    static final int BUFFERS = 48;

    final boolean direct;

    Backend(final boolean direct)
    {
        this.direct = direct;
    }

    boolean isUring()
    {
        return this == URING_BUFFERED || this == URING_DIRECT || this == URING_FIXED;
    }

    /** @return true if reads and plain writes complete inline, before the submit call returns. */
    boolean isInline()
    {
        return this == THREADS_INLINE || this == THREADS_FLUSHES_OFFLOADED;
    }

    FileOptions options()
    {
        return FileOptions.readWrite().withDirect(direct);
    }

    Fixture start() throws IOException
    {
        final BufferPool pool = new BufferPool(BUFFER_SIZE, BUFFERS);
        final IoEngine engine = switch (this)
        {
            case THREADS, THREADS_DIRECT -> new ThreadPoolIoEngine(2);
            case THREADS_INLINE -> new ThreadPoolIoEngine(0);
            case THREADS_FLUSHES_OFFLOADED -> new ThreadPoolIoEngine(1, IoOffload.FLUSHES);
            case URING_BUFFERED, URING_DIRECT -> new UringIoEngine();
            case URING_FIXED -> new UringIoEngine(UringIoEngine.DEFAULT_RING_ENTRIES, pool);
        };
        if (this == URING_FIXED && !((UringIoEngine)engine).fixedBufferStatus().contains("registered"))
        {
            throw new IllegalStateException("fixed buffers not in use: " + ((UringIoEngine)engine).fixedBufferStatus());
        }
        return new Fixture(this, engine, pool);
    }

    /** An engine and a pool, closed together. */
    record Fixture(Backend backend, IoEngine engine, BufferPool pool) implements AutoCloseable
    {
        @Override
        public void close()
        {
            engine.close();
            pool.close();
        }
    }
}
