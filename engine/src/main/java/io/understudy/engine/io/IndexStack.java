package io.understudy.engine.io;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A lock-free stack of the integers {@code [0, capacity)}: the free list behind {@link BufferPool} and the
 * request slots of both I/O backends.
 * <p>
 * A Treiber stack whose head packs a version counter in its high 32 bits with the top index in the low
 * 32 bits, so that a pop racing a pop-push pair (ABA) fails its compare-and-set. Unlike a bounded array
 * queue (Vyukov/Agrona style), {@link #pop()} fails only when the stack is really empty: a pusher that is
 * preempted halfway has not changed the stack yet, so it cannot make others see a false "empty". On a
 * small shared machine that matters, since a false empty is spurious back-pressure for a submitter.
 */
public final class IndexStack
{
    public static final int EMPTY = -1;

    private final int[] next;
    /** version (high 32 bits) | index of the top element (low 32 bits), EMPTY when empty. */
    private final AtomicLong head;

    /** Creates a full stack holding {@code 0..capacity-1}, 0 on top. */
    public IndexStack(final int capacity)
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
        head = new AtomicLong(0);
    }

    public int capacity()
    {
        return next.length;
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
            final long updated = nextVersion(current) | (next[index] & 0xFFFF_FFFFL);
            if (head.compareAndSet(current, updated))
            {
                return index;
            }
        }
    }

    /** Pushes an index popped earlier; each popped index must be pushed back exactly once. */
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
