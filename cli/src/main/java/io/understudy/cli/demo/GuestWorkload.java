package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The demo's guest: writes to the primary's export through a real NBD client, several requests in flight at
 * once, as a VM's block layer does. Twelve request slots write random 4 KiB blocks, four write a sequential
 * stream of 1 MiB requests that wraps at the end of the disk. Every write carries a fresh stamp and the content
 * the {@link DiskModel} derives from it; its acknowledgement is recorded in the model.
 * <p>
 * A slot is never given a range that overlaps a write still in flight (a real guest does not race its own
 * writes either), so the model's per-block order is the disk's. {@link #submit} runs on one thread, the driver's;
 * completions arrive on the NBD client's receiver thread. Nothing is allocated per request: slots, buffers and
 * the completion callback are made once.
 */
final class GuestWorkload implements AutoCloseable
{
    static final int RANDOM_SLOTS = 12;
    static final int SEQUENTIAL_SLOTS = 4;
    static final int SEQUENTIAL_BYTES = 1 << 20;
    /** Random picks tried per free slot before it waits for the next duty cycle (they rarely collide). */
    private static final int RANDOM_TRIES = 4;

    private final BlockDevice disk;
    private final DiskModel model;
    private final Arena arena = Arena.ofShared();
    private final Slot[] slots = new Slot[RANDOM_SLOTS + SEQUENTIAL_SLOTS];
    private final IoCompletion onComplete = this::onComplete;
    /** Incremented before a submission, decremented after a completion updated the model (release). */
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong bytes = new AtomicLong();
    private final AtomicLong failedAfterCrash = new AtomicLong();
    /** Set before the primary's power is cut: failures from then on are the crash's, not the replication's. */
    private volatile boolean crashed;
    /** The first failed write before the crash, as {@code offset << 16 | errno}; -1 while there is none. */
    private final AtomicLong firstFailure = new AtomicLong(-1);

    /** Driver thread only. */
    private long nextStamp = 1;
    private long sequentialCursor;
    private long random;

    /**
     * @param disk  the guest's disk (owned from now on: closing the guest closes it).
     * @param model receives every acknowledged write.
     * @param seed  of the random offsets.
     */
    GuestWorkload(final BlockDevice disk, final DiskModel model, final long seed)
    {
        if (disk.size() != model.size() || model.size() % SEQUENTIAL_BYTES != 0 ||
            model.size() < (long)SEQUENTIAL_SLOTS * SEQUENTIAL_BYTES * 2)
        {
            throw new IllegalArgumentException("the disk (" + disk.size() + " bytes) must match the model (" +
                model.size() + ") and be a multiple of 1 MiB of at least 8 MiB");
        }
        this.disk = disk;
        this.model = model;
        this.random = seed == 0 ? 1 : seed;
        for (int i = 0; i < slots.length; i++)
        {
            final int length = i < RANDOM_SLOTS ? DiskModel.BLOCK_SIZE : SEQUENTIAL_BYTES;
            slots[i] = new Slot(i < RANDOM_SLOTS, arena.allocate(length, DiskModel.BLOCK_SIZE));
        }
    }

    /**
     * Gives every free slot a new write, unless it would overlap one in flight.
     *
     * @return the number of writes submitted.
     */
    int submit()
    {
        int submitted = 0;
        for (int i = 0; i < slots.length; i++)
        {
            final Slot slot = slots[i];
            if (slot.busy || !place(slot))
            {
                continue;
            }
            final int blocks = slot.length / DiskModel.BLOCK_SIZE;
            final int firstBlock = (int)(slot.offset / DiskModel.BLOCK_SIZE);
            slot.stamp = nextStamp++;
            for (int b = 0; b < blocks; b++)
            {
                model.fill(firstBlock + b, slot.stamp, slot.buffer, (long)b * DiskModel.BLOCK_SIZE);
            }
            // Volatile writes: the slot's fields above are published to the completion thread.
            slot.busy = true;
            inFlight.incrementAndGet();
            if (!disk.write(slot.offset, slot.buffer, slot.length, 0, onComplete, i))
            {
                // Back-pressure: nothing started; try again in the next duty cycle.
                slot.busy = false;
                inFlight.decrementAndGet();
                break;
            }
            if (!slot.random)
            {
                sequentialCursor = (slot.offset + SEQUENTIAL_BYTES) % model.size();
            }
            submitted++;
        }
        return submitted;
    }

    /** @return writes submitted and not completed yet (acquire: their model updates are visible at 0). */
    int inFlight()
    {
        return inFlight.get();
    }

    /** @return writes acknowledged successfully. */
    long writes()
    {
        return writes.get();
    }

    /** @return bytes of the writes acknowledged successfully. */
    long bytes()
    {
        return bytes.get();
    }

    /** @return writes that failed because the primary crashed (expected: they were in flight at the cut). */
    long failedAfterCrash()
    {
        return failedAfterCrash.get();
    }

    /** @return null, or what the first write that failed before the crash was and why. */
    String failure()
    {
        final long failure = firstFailure.get();
        return failure < 0 ? null : "a guest write at offset " + (failure >>> 16) + " failed with " +
            Errno.name((int)(failure & 0xFFFF)) + " before the crash";
    }

    /** The primary is about to crash: the guest stops writing and expects its writes in flight to fail. */
    void crash()
    {
        crashed = true;
    }

    /** Closes the NBD client (after its requests in flight completed) and frees the buffers. */
    @Override
    public void close()
    {
        disk.close();
        arena.close();
    }

    /** Picks the slot's next range; false if it would overlap a write in flight. */
    private boolean place(final Slot slot)
    {
        if (slot.random)
        {
            for (int t = 0; t < RANDOM_TRIES; t++)
            {
                final long offset = (nextRandom() >>> 1) % model.blockCount() * DiskModel.BLOCK_SIZE;
                if (!overlapsInFlight(offset, DiskModel.BLOCK_SIZE))
                {
                    slot.offset = offset;
                    slot.length = DiskModel.BLOCK_SIZE;
                    return true;
                }
            }
            return false;
        }
        if (overlapsInFlight(sequentialCursor, SEQUENTIAL_BYTES))
        {
            return false;
        }
        slot.offset = sequentialCursor;
        slot.length = SEQUENTIAL_BYTES;
        return true;
    }

    private boolean overlapsInFlight(final long offset, final int length)
    {
        for (final Slot other : slots)
        {
            // A slot seen idle has completed and recorded its write: overlapping it is safe.
            if (other.busy && offset < other.offset + other.length && other.offset < offset + length)
            {
                return true;
            }
        }
        return false;
    }

    /** xorshift64*: fast, and the same sequence for the same seed. */
    private long nextRandom()
    {
        long x = random;
        x ^= x >>> 12;
        x ^= x << 25;
        x ^= x >>> 27;
        random = x;
        return x * 0x2545_F491_4F6C_DD1DL;
    }

    /** Sees the slot's fields: the submission through the client happens-before the request's completion. */
    private void onComplete(final long cookie, final int result)
    {
        final Slot slot = slots[(int)cookie];
        if (result >= 0)
        {
            model.acknowledged((int)(slot.offset / DiskModel.BLOCK_SIZE), slot.length / DiskModel.BLOCK_SIZE,
                slot.stamp);
            writes.incrementAndGet();
            bytes.addAndGet(slot.length);
        }
        else if (crashed)
        {
            failedAfterCrash.incrementAndGet();
        }
        else
        {
            firstFailure.compareAndSet(-1, slot.offset << 16 | (-result & 0xFFFF));
        }
        // Release order: the model update above happens-before the driver sees the slot idle or the count drop.
        slot.busy = false;
        inFlight.decrementAndGet();
    }

    /** One request slot with its own buffer. */
    private static final class Slot
    {
        private final boolean random;
        private final MemorySegment buffer;
        private long offset;
        private int length;
        private long stamp;
        private volatile boolean busy;

        Slot(final boolean random, final MemorySegment buffer)
        {
            this.random = random;
            this.buffer = buffer;
        }
    }
}
