package io.understudy.engine.concurrent;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A lock-free stack of integers in {@code [0, capacity)}: the free list of preallocated request slots (I/O
 * backends, buffer pools, every layer of the replication engine) and the set of parked {@link Waiters}.
 * <p>
 * A Treiber stack whose head packs a version counter in its high 32 bits with the top index in the low
 * 32 bits, so that a pop racing a pop-push pair (ABA) fails its compare-and-set. Each index links to the one
 * below it through a plain {@code int} array, written before the compare-and-set that publishes it.
 * <p>
 * <b>Why not a bounded array queue.</b> In a Vyukov-style queue (Agrona's {@code ManyToManyConcurrentArrayQueue})
 * a consumer that is preempted between taking a position and releasing it blocks that array cell: producers
 * that wrap around to it are told "full" although the queue holds fewer elements than its capacity. As a free
 * list of N slots in a queue of capacity N, an {@code offer} that fails that way loses the slot for good
 * (measured: 2 threads cycling 16 elements through a queue of 16 lost 15 of them within a second); every lost
 * slot shrinks the queue depth until the device stops. Here {@link #push} and {@link #pop} only retry a
 * failed compare-and-set: a push never fails, and a pop fails only when the stack is really empty, since a
 * thread preempted halfway has not changed the stack yet.
 */
public final class IndexStack
{
    public static final int EMPTY = -1;

    private static final long INDEX_MASK = 0xFFFF_FFFFL;

    private final int[] next;
    /** version (high 32 bits) | index of the top element (low 32 bits), EMPTY when empty. */
    private final AtomicLong head;

    /** Creates a full stack holding {@code 0..capacity-1}, 0 on top. */
    public IndexStack(final int capacity)
    {
        this(capacity, true);
    }

    private IndexStack(final int capacity, final boolean full)
    {
        if (capacity <= 0)
        {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        next = new int[capacity];
        for (int i = 0; i < capacity; i++)
        {
            next[i] = i + 1 < capacity ? i + 1 : EMPTY;
        }
        head = new AtomicLong(full ? 0 : EMPTY & INDEX_MASK);
    }

    /** @return a stack with room for {@code 0..capacity-1} holding none of them. */
    public static IndexStack empty(final int capacity)
    {
        return new IndexStack(capacity, false);
    }

    public int capacity()
    {
        return next.length;
    }

    /** @return true if the stack holds no index (a volatile read; exact at that instant). */
    public boolean isEmpty()
    {
        return (int)head.get() == EMPTY;
    }

    /** @return the top index, or {@link #EMPTY}. */
    public int pop()
    {
        while (true)
        {
            final long current = head.get();
            final int index = (int)current;
            if (index == EMPTY)
            {
                return EMPTY;
            }
            // Reading next[index] may race with a push of this index; the versioned CAS then fails and retries.
            final long updated = nextVersion(current) | (next[index] & INDEX_MASK);
            if (head.compareAndSet(current, updated))
            {
                return index;
            }
        }
    }

    /**
     * Takes every index at once, leaving the stack empty. Walk the detached chain with {@link #below}: nobody
     * else changes it, until one of its indexes is pushed again.
     *
     * @return the top index of the detached chain, or {@link #EMPTY}.
     */
    public int popAll()
    {
        while (true)
        {
            final long current = head.get();
            if ((int)current == EMPTY)
            {
                return EMPTY;
            }
            // Acquire by the successful CAS: the links written by the pushers before theirs are visible.
            if (head.compareAndSet(current, nextVersion(current) | (EMPTY & INDEX_MASK)))
            {
                return (int)current;
            }
        }
    }

    /**
     * @return the index under {@code index} in a chain detached by {@link #popAll}, or {@link #EMPTY} at its end.
     * Read it before pushing {@code index} again: a push relinks it.
     */
    public int below(final int index)
    {
        return next[index];
    }

    /** Pushes an index not in the stack (popped earlier, or never pushed); pushing one twice corrupts it. */
    public void push(final int index)
    {
        if (index < 0 || index >= next.length)
        {
            throw new IllegalArgumentException("not an index of this stack: " + index);
        }
        while (true)
        {
            final long current = head.get();
            next[index] = (int)current;
            // The CAS publishes the plain write of next[index] (volatile-write semantics).
            if (head.compareAndSet(current, nextVersion(current) | (index & INDEX_MASK)))
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
