package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Test device over a byte array that keeps write-type requests (write, write-zeroes, discard as zeroes) pending and
 * applies each one's bytes only when it completes, in an order the test chooses: newest first
 * ({@link #completeNewestFirst}), or at random from {@code completers} background threads. A device below
 * that runs concurrent requests in any order (a thread pool, io_uring, a network peer) is exactly this; whichever
 * of two overlapping writes completes last is what the range keeps. Reads and flushes complete at once.
 * <p>
 * It also counts a forbidden observation for the order gate above it: a write-type request submitted while an
 * overlapping one is pending here ({@link #overlapsSeen()}).
 */
public final class ReorderingDevice implements BlockDevice
{
    private record Pending(long offset, int length, MemorySegment buffer, IoCompletion completion, long cookie)
    {
        boolean overlaps(final long start, final long end)
        {
            return offset < end && start < offset + length;
        }
    }

    private final byte[] bytes;
    private final List<Pending> pending = new ArrayList<>();
    private final List<Long> submittedOffsets = new ArrayList<>();
    private final Thread[] completers;
    private volatile boolean refusing;
    private volatile boolean running = true;
    private int overlapsSeen;

    /** @param completers background threads completing pending requests at random (0: the test completes them). */
    public ReorderingDevice(final int size, final int completers)
    {
        this.bytes = new byte[size];
        this.completers = new Thread[completers];
        for (int i = 0; i < completers; i++)
        {
            this.completers[i] = Thread.ofPlatform().name("reordering-completer-" + i).daemon().start(this::complete);
        }
    }

    /** While refusing, write-type requests see back-pressure. */
    public void refuse(final boolean refuse)
    {
        refusing = refuse;
    }

    public synchronized int pendingCount()
    {
        return pending.size();
    }

    /** @return offsets of the write-type requests this device accepted, in submission order. */
    public synchronized List<Long> submittedOffsets()
    {
        return List.copyOf(submittedOffsets);
    }

    /** @return write-type requests that arrived while an overlapping one was pending (the gate must prevent it). */
    public synchronized int overlapsSeen()
    {
        return overlapsSeen;
    }

    public synchronized byte[] snapshot()
    {
        return bytes.clone();
    }

    /** Completes every pending request, the most recently submitted first (including those that arrive meanwhile). */
    public void completeNewestFirst()
    {
        while (true)
        {
            final Pending request;
            synchronized (this)
            {
                if (pending.isEmpty())
                {
                    return;
                }
                request = pending.removeLast();
                apply(request);
            }
            request.completion().onComplete(request.cookie(), request.buffer() == null ? 0 : request.length());
        }
    }

    @Override
    public long size()
    {
        return bytes.length;
    }

    @Override
    public int alignment()
    {
        return 1;
    }

    @Override
    public boolean isReadOnly()
    {
        return false;
    }

    @Override
    public boolean canDiscard()
    {
        return false;
    }

    @Override
    public boolean canFastZero()
    {
        return false;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        synchronized (this)
        {
            MemorySegment.copy(bytes, (int)offset, buffer, ValueLayout.JAVA_BYTE, 0, length);
        }
        completion.onComplete(cookie, length);
        return true;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        return queue(new Pending(offset, length, buffer, completion, cookie));
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, 0);
        return true;
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return queue(new Pending(offset, (int)length, null, completion, cookie));
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        return queue(new Pending(offset, (int)length, null, completion, cookie));
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        return length;
    }

    /** Stops the completer threads once nothing is pending. */
    @Override
    public void close()
    {
        running = false;
        for (final Thread completer : completers)
        {
            try
            {
                completer.join(TimeUnit.SECONDS.toMillis(20));
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        }
    }

    private synchronized boolean queue(final Pending request)
    {
        if (refusing)
        {
            return false;
        }
        for (final Pending other : pending)
        {
            if (other.overlaps(request.offset(), request.offset() + request.length()))
            {
                overlapsSeen++;
            }
        }
        pending.add(request);
        submittedOffsets.add(request.offset());
        return true;
    }

    private void apply(final Pending request)
    {
        if (request.buffer() == null)
        {
            Arrays.fill(bytes, (int)request.offset(), (int)request.offset() + request.length(), (byte)0);
        }
        else
        {
            MemorySegment.copy(request.buffer(), ValueLayout.JAVA_BYTE, 0, bytes, (int)request.offset(),
                request.length());
        }
    }

    private void complete()
    {
        final ThreadLocalRandom random = ThreadLocalRandom.current();
        while (true)
        {
            final Pending request;
            synchronized (this)
            {
                if (pending.isEmpty())
                {
                    request = null;
                }
                else
                {
                    request = pending.remove(random.nextInt(pending.size()));
                    apply(request);
                }
            }
            if (request != null)
            {
                request.completion().onComplete(request.cookie(), request.buffer() == null ? 0 : request.length());
            }
            else if (!running)
            {
                return;
            }
            else
            {
                LockSupport.parkNanos(random.nextInt(1_000, 20_000));
            }
        }
    }
}
