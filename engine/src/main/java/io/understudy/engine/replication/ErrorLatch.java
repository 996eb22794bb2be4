package io.understudy.engine.replication;

import io.understudy.engine.device.Errno;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Keeps the first error of a replicated disk with its reason until it is cleared (spec 2.2, "error latch").
 * Later errors are only counted: the first one is the cause an operator must see, the others are usually its
 * consequences. Latching is lock-free and may happen on any completion thread; the first latch allocates one
 * small record, later ones allocate nothing.
 */
public final class ErrorLatch
{
    /**
     * A latched error.
     *
     * @param errno       the negated errno.
     * @param reason      what failed, a constant string (no formatting on the I/O path).
     * @param latchedNanos {@link System#nanoTime()} when it was latched.
     */
    public record LatchedError(int errno, String reason, long latchedNanos)
    {
        @Override
        public String toString()
        {
            return Errno.name(errno) + ": " + reason;
        }
    }

    private final AtomicReference<LatchedError> first = new AtomicReference<>();
    private final AtomicLong count = new AtomicLong();

    /**
     * Latches {@code errno} unless an error is already latched.
     *
     * @return true if this call latched it (it is the first error).
     */
    public boolean latch(final int errno, final String reason)
    {
        count.incrementAndGet();
        // Volatile read first: once latched, no record is allocated for every later failure.
        if (first.get() != null)
        {
            return false;
        }
        return first.compareAndSet(null, new LatchedError(-Math.abs(errno), reason, System.nanoTime()));
    }

    /** @return the first error latched since the last {@link #clear}, or null. */
    public LatchedError get()
    {
        return first.get();
    }

    public boolean isSet()
    {
        return first.get() != null;
    }

    /** @return errors reported since creation (latched or not). */
    public long count()
    {
        return count.get();
    }

    /** Forgets the latched error (start, stop of the primary, successful commit: spec 2.2). */
    public void clear()
    {
        first.set(null);
    }
}
