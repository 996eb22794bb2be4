package io.understudy.nbd.server;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The server-wide payload memory: one slab per size class (4 KiB, 64 KiB, 1 MiB, 32 MiB), each cut into a fixed
 * number of 4096-aligned buffers, so the server never holds more than the sum of the classes however many clients
 * send however large requests.
 * <p>
 * A class's slab is allocated on first demand (a server that only sees 4 KiB requests never commits the 32 MiB
 * class), once, under this object's lock; afterwards acquire and release are lock-free and allocate nothing.
 * <p>
 * Slabs are direct {@link ByteBuffer}s rather than arena segments on purpose: the socket layer must pin an arena
 * segment's session for every buffer of every gathering write, and allocates a releaser object each time to undo
 * it; a plain direct buffer needs no pinning. Each buffer has its {@link ByteBuffer} view (for the socket) and its
 * {@link MemorySegment} view (for the device) made up front. Slabs are freed by the garbage collector once the
 * server is unreachable.
 * <p>
 * A handle packs the class in bits 24-31 and the buffer index in bits 0-23.
 */
final class PayloadPool
{
    static final int NONE = -1;

    private static final int[] CLASS_SIZES = {4 << 10, 64 << 10, 1 << 20, 32 << 20};
    private static final int CLASS_SHIFT = 24;
    private static final int INDEX_MASK = (1 << CLASS_SHIFT) - 1;
    private static final int ALIGNMENT = 4096;
    private static final long MAX_CLASS_BYTES = 1L << 30;

    private final int[] counts = new int[CLASS_SIZES.length];
    /** Published with volatile semantics: a thread that sees a class sees its views. */
    private final AtomicReferenceArray<SizeClass> classes = new AtomicReferenceArray<>(CLASS_SIZES.length);

    /**
     * @param budgetBytes bytes per size class (at most 1 GiB); each class holds at least one buffer.
     */
    PayloadPool(final long budgetBytes)
    {
        for (int i = 0; i < CLASS_SIZES.length; i++)
        {
            counts[i] = (int)Math.max(1, Math.min(MAX_CLASS_BYTES, budgetBytes) / CLASS_SIZES[i]);
        }
    }

    /** @return a handle for a buffer of at least {@code length} bytes, or {@link #NONE} if none is free now. */
    int acquire(final int length)
    {
        final int classIndex = classIndex(length);
        SizeClass sizeClass = classes.get(classIndex);
        if (sizeClass == null)
        {
            sizeClass = createClass(classIndex);
        }
        final int index = sizeClass.acquire();
        return index < 0 ? NONE : (classIndex << CLASS_SHIFT) | index;
    }

    void release(final int handle)
    {
        classes.get(handle >>> CLASS_SHIFT).release(handle & INDEX_MASK);
    }

    MemorySegment segment(final int handle)
    {
        return classes.get(handle >>> CLASS_SHIFT).segments[handle & INDEX_MASK];
    }

    /** @return the buffer's reusable view; its position and limit belong to the holder of the handle. */
    ByteBuffer view(final int handle)
    {
        return classes.get(handle >>> CLASS_SHIFT).views[handle & INDEX_MASK];
    }

    static int capacity(final int handle)
    {
        return CLASS_SIZES[handle >>> CLASS_SHIFT];
    }

    private static int classIndex(final int length)
    {
        int classIndex = 0;
        while (CLASS_SIZES[classIndex] < length)
        {
            classIndex++;
        }
        return classIndex;
    }

    private synchronized SizeClass createClass(final int classIndex)
    {
        SizeClass sizeClass = classes.get(classIndex);
        if (sizeClass == null)
        {
            sizeClass = new SizeClass(CLASS_SIZES[classIndex], counts[classIndex]);
            classes.set(classIndex, sizeClass);
        }
        return sizeClass;
    }

    /**
     * Equally sized buffers with a lock-free free list: a Treiber stack whose head packs a version counter (high
     * 32 bits) with the top index (low 32 bits), so that a pop racing a pop-push pair (ABA) fails its CAS.
     */
    private static final class SizeClass
    {
        private static final int EMPTY = -1;

        final ByteBuffer[] views;
        final MemorySegment[] segments;
        private final int[] next;
        private final AtomicLong head = new AtomicLong();

        SizeClass(final int size, final int count)
        {
            final ByteBuffer slab = ByteBuffer.allocateDirect(size * count + ALIGNMENT).alignedSlice(ALIGNMENT);
            views = new ByteBuffer[count];
            segments = new MemorySegment[count];
            next = new int[count];
            for (int i = 0; i < count; i++)
            {
                views[i] = slab.slice(i * size, size);
                segments[i] = MemorySegment.ofBuffer(views[i]);
                next[i] = i + 1 < count ? i + 1 : EMPTY;
            }
        }

        int acquire()
        {
            while (true)
            {
                final long current = head.get();
                final int index = (int)current;
                if (index == EMPTY)
                {
                    return EMPTY;
                }
                // next[index] may be rewritten by a racing push of this index; the versioned CAS then fails.
                final long updated = nextVersion(current) | (next[index] & 0xFFFF_FFFFL);
                if (head.compareAndSet(current, updated))
                {
                    return index;
                }
            }
        }

        void release(final int index)
        {
            while (true)
            {
                final long current = head.get();
                next[index] = (int)current;
                // The volatile CAS publishes the plain write of next[index] to the next popper.
                if (head.compareAndSet(current, nextVersion(current) | (index & 0xFFFF_FFFFL)))
                {
                    return;
                }
            }
        }

        private static long nextVersion(final long current)
        {
            return ((current >>> 32) + 1) << 32;
        }
    }
}
