package io.understudy.nbd.server;

import io.understudy.engine.io.BufferPool;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The server-wide payload memory: one {@link BufferPool} per size class (4 KiB, 64 KiB, 1 MiB, 32 MiB), each
 * with a fixed number of buffers, so the server never holds more than the sum of the classes however many
 * clients send however large requests.
 * <p>
 * A class's slab is allocated on first demand (a server that only sees 4 KiB requests never commits the
 * 32 MiB class), once, under this object's lock; afterwards acquire and release are lock-free and allocate
 * nothing. Each buffer also has a {@link ByteBuffer} view made up front, because socket channels speak
 * {@code ByteBuffer} and {@link MemorySegment#asByteBuffer()} allocates.
 * <p>
 * A handle packs the class in bits 24-31 and the slot index in bits 0-23.
 */
final class PayloadPool implements AutoCloseable
{
    static final int NONE = -1;

    private static final int[] CLASS_SIZES = {4 << 10, 64 << 10, 1 << 20, 32 << 20};
    private static final int CLASS_SHIFT = 24;
    private static final int INDEX_MASK = (1 << CLASS_SHIFT) - 1;

    private final int[] counts;
    /** Published with volatile semantics: a reader that sees a pool also sees its views. */
    private final AtomicReferenceArray<BufferPool> pools = new AtomicReferenceArray<>(CLASS_SIZES.length);
    private final ByteBuffer[][] views = new ByteBuffer[CLASS_SIZES.length][];

    /**
     * @param budgetBytes bytes per size class; each class holds at least {@code minimumPerClass} buffers.
     */
    PayloadPool(final long budgetBytes, final int minimumPerClass)
    {
        counts = new int[CLASS_SIZES.length];
        for (int i = 0; i < CLASS_SIZES.length; i++)
        {
            counts[i] = (int)Math.max(minimumPerClass, Math.min(4096, budgetBytes / CLASS_SIZES[i]));
        }
    }

    /** @return a handle for a buffer of at least {@code length} bytes, or {@link #NONE} if none is free now. */
    int acquire(final int length)
    {
        final int sizeClass = sizeClass(length);
        BufferPool pool = pools.get(sizeClass);
        if (pool == null)
        {
            pool = createClass(sizeClass);
        }
        final int index = pool.acquire();
        return index < 0 ? NONE : (sizeClass << CLASS_SHIFT) | index;
    }

    void release(final int handle)
    {
        pools.get(handle >>> CLASS_SHIFT).release(handle & INDEX_MASK);
    }

    MemorySegment segment(final int handle)
    {
        return pools.get(handle >>> CLASS_SHIFT).buffer(handle & INDEX_MASK);
    }

    /** @return the buffer's reusable view; its position and limit belong to the holder of the handle. */
    ByteBuffer view(final int handle)
    {
        return views[handle >>> CLASS_SHIFT][handle & INDEX_MASK];
    }

    static int capacity(final int handle)
    {
        return CLASS_SIZES[handle >>> CLASS_SHIFT];
    }

    private static int sizeClass(final int length)
    {
        int sizeClass = 0;
        while (CLASS_SIZES[sizeClass] < length)
        {
            sizeClass++;
        }
        return sizeClass;
    }

    private synchronized BufferPool createClass(final int sizeClass)
    {
        BufferPool pool = pools.get(sizeClass);
        if (pool == null)
        {
            pool = new BufferPool(CLASS_SIZES[sizeClass], counts[sizeClass]);
            final ByteBuffer[] classViews = new ByteBuffer[pool.capacity()];
            for (int i = 0; i < classViews.length; i++)
            {
                classViews[i] = pool.buffer(i).asByteBuffer();
            }
            views[sizeClass] = classViews;
            // Volatile store after the views: lock-free readers that see the pool see its views.
            pools.set(sizeClass, pool);
        }
        return pool;
    }

    @Override
    public synchronized void close()
    {
        for (int i = 0; i < pools.length(); i++)
        {
            final BufferPool pool = pools.getAndSet(i, null);
            if (pool != null)
            {
                pool.close();
            }
        }
    }
}
