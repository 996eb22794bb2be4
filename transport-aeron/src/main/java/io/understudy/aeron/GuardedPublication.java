package io.understudy.aeron;

import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import org.agrona.DirectBuffer;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An {@link ExclusivePublication} that several threads offer to (submitters, the agent, a goodbye), each offer
 * under a spin lock.
 * <p>
 * Why exclusive and not Aeron's concurrent publication: the links tell primaries apart by session id, and a
 * concurrent publication shares one session with every other publication on the same channel and stream of the
 * same driver (a second one with its own {@code session-id} is refused), whereas each exclusive publication has its
 * own. The lock is held only while the message is copied into the log, never while waiting out back-pressure, and
 * it allocates nothing (a CAS on one flag: acquire on success, release on unlock).
 */
final class GuardedPublication implements AutoCloseable
{
    private final ExclusivePublication publication;
    private final AtomicBoolean locked = new AtomicBoolean();

    GuardedPublication(final ExclusivePublication publication)
    {
        this.publication = publication;
    }

    long offer(final DirectBuffer buffer, final int offset, final int length)
    {
        lock();
        try
        {
            return publication.offer(buffer, offset, length);
        }
        finally
        {
            locked.set(false);
        }
    }

    long offer(
        final DirectBuffer first, final int firstOffset, final int firstLength, final DirectBuffer second,
        final int secondOffset, final int secondLength)
    {
        lock();
        try
        {
            return publication.offer(first, firstOffset, firstLength, second, secondOffset, secondLength);
        }
        finally
        {
            locked.set(false);
        }
    }

    boolean isConnected()
    {
        return publication.isConnected();
    }

    int sessionId()
    {
        return publication.sessionId();
    }

    int maxMessageLength()
    {
        return publication.maxMessageLength();
    }

    /** @return true once the publication is closed (its offers return {@link Publication#CLOSED}). */
    boolean isClosed()
    {
        return publication.isClosed();
    }

    @Override
    public void close()
    {
        lock();
        try
        {
            publication.close();
        }
        finally
        {
            locked.set(false);
        }
    }

    private void lock()
    {
        while (!locked.compareAndSet(false, true))
        {
            Thread.onSpinWait();
        }
    }
}
