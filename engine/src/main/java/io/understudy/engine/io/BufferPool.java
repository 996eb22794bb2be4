package io.understudy.engine.io;

import io.understudy.engine.concurrent.IndexStack;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A fixed pool of equally sized, 4096-aligned off-heap buffers carved from one slab.
 * <p>
 * The slab is allocated once from a shared arena (closing a shared arena costs a thread handshake, so
 * never per I/O) and every slot's {@link MemorySegment} view is created up front: acquiring and releasing
 * a buffer allocates nothing. Free slots form a lock-free {@link IndexStack}.
 * <p>
 * Thread-safe. A slot must be released exactly once, by whoever holds it, after the last I/O on it has
 * completed.
 */
public final class BufferPool implements AutoCloseable
{
    /** Alignment of every buffer: enough for O_DIRECT on any block size up to 4 KiB. */
    public static final int ALIGNMENT = 4096;
    private final Arena arena;
    private final MemorySegment slab;
    private final MemorySegment[] buffers;
    private final IndexStack free;
    private final int slotSize;

    /**
     * @param slotSize bytes per buffer, rounded up to a multiple of {@link #ALIGNMENT}.
     * @param slots    number of buffers.
     */
    public BufferPool(final int slotSize, final int slots)
    {
        if (slotSize <= 0 || slots <= 0)
        {
            throw new IllegalArgumentException("slotSize and slots must be positive: " + slotSize + ", " + slots);
        }
        this.slotSize = (int)alignUp(slotSize, ALIGNMENT);
        this.arena = Arena.ofShared();
        this.slab = arena.allocate((long)this.slotSize * slots, ALIGNMENT);
        this.buffers = new MemorySegment[slots];
        for (int i = 0; i < slots; i++)
        {
            buffers[i] = slab.asSlice((long)i * this.slotSize, this.slotSize);
        }
        this.free = new IndexStack(slots);
    }

    public int slotSize()
    {
        return slotSize;
    }

    public int capacity()
    {
        return buffers.length;
    }

    /** @return the whole slab, e.g. to register it with io_uring as one fixed buffer. */
    public MemorySegment slab()
    {
        return slab;
    }

    /** @return a free slot index, or -1 if every buffer is in use. */
    public int acquire()
    {
        return free.pop();
    }

    /** Returns a slot acquired earlier. */
    public void release(final int index)
    {
        free.push(index);
    }

    /** @return the buffer of a slot: the same object every time, so handing it out allocates nothing. */
    public MemorySegment buffer(final int index)
    {
        return buffers[index];
    }

    /** Frees the slab. Every slot must have been released and no I/O may still use any buffer. */
    @Override
    public void close()
    {
        arena.close();
    }

    static long alignUp(final long value, final long alignment)
    {
        return (value + alignment - 1) & -alignment;
    }
}
