package io.understudy.cli.demo;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The reference model of the demo: what every 4 KiB block of the survivor's disk must hold after a failover
 * (replication spec AT-06/AX-04: the state at the last completed checkpoint, the writes of the unfinished epoch
 * rolled back).
 * <p>
 * It keeps no copy of the data. Every write the guest issues gets a <i>stamp</i> (a positive serial number),
 * and the bytes of a block are a pure function of (seed, block, stamp), so they can be regenerated for
 * verification. Stamp 0 is the initial content the disks are filled with. Per block the model holds two stamps:
 * the one a completed checkpoint covers, and the last acknowledged write of the open epoch. A completed
 * checkpoint moves the second into the first; a failover must leave the first on the disk. That is 16 bytes
 * per 4 KiB block (256 KiB for a 64 MiB disk).
 * <p>
 * <b>Threads.</b> {@link #acknowledged} runs on the guest's completion thread, {@link #commitEpoch} on the
 * thread that takes checkpoints, only while no write is in flight; the guest publishes its completions with a
 * release (its in-flight counter) that the checkpointing thread acquires before it commits. Two writes to the
 * same block are never in flight together (the guest avoids it), so the order of acknowledgements per block is
 * the order of the writes.
 */
final class DiskModel
{
    /** Granularity of the model: the guest writes whole, aligned blocks. */
    static final int BLOCK_SIZE = 4096;

    private static final int LONGS_PER_BLOCK = BLOCK_SIZE / Long.BYTES;
    private static final long GOLDEN = 0x9E37_79B9_7F4A_7C15L;

    private final long size;
    private final long seed;
    /** Per block, the stamp a completed checkpoint covers (0: the initial content). */
    private final long[] checkpointed;
    /** Per block, the stamp of the last acknowledged write of the open epoch (0: none). */
    private final long[] pending;

    /**
     * @param size disk size in bytes, a positive multiple of {@link #BLOCK_SIZE}.
     * @param seed varies the content between runs.
     */
    DiskModel(final long size, final long seed)
    {
        if (size <= 0 || size % BLOCK_SIZE != 0 || size / BLOCK_SIZE > Integer.MAX_VALUE)
        {
            throw new IllegalArgumentException("size must be a positive multiple of " + BLOCK_SIZE + ": " + size);
        }
        this.size = size;
        this.seed = seed;
        final int blocks = (int)(size / BLOCK_SIZE);
        this.checkpointed = new long[blocks];
        this.pending = new long[blocks];
    }

    long size()
    {
        return size;
    }

    int blockCount()
    {
        return checkpointed.length;
    }

    long seed()
    {
        return seed;
    }

    /** Writes the content of {@code block} as written by the write stamped {@code stamp} at {@code offset}. */
    void fill(final int block, final long stamp, final MemorySegment target, final long offset)
    {
        final long base = mix(seed ^ mix(block * GOLDEN + stamp));
        for (int i = 0; i < LONGS_PER_BLOCK; i++)
        {
            target.set(ValueLayout.JAVA_LONG_UNALIGNED, offset + (long)i * Long.BYTES, mix(base + i * GOLDEN));
        }
    }

    /** Writes what {@code block} must hold after a failover (its checkpointed content) at {@code offset}. */
    void fillExpected(final int block, final MemorySegment target, final long offset)
    {
        fill(block, checkpointed[block], target, offset);
    }

    /** Records a write of {@code blocks} blocks from {@code firstBlock}, stamped {@code stamp}, as acknowledged. */
    void acknowledged(final int firstBlock, final int blocks, final long stamp)
    {
        for (int block = firstBlock; block < firstBlock + blocks; block++)
        {
            pending[block] = stamp;
        }
    }

    /**
     * A checkpoint completed: the acknowledged writes of the epoch become what the disk must hold.
     *
     * @return the number of blocks whose expected content changed.
     */
    int commitEpoch()
    {
        int changed = 0;
        for (int block = 0; block < pending.length; block++)
        {
            final long stamp = pending[block];
            if (stamp != 0)
            {
                checkpointed[block] = stamp;
                pending[block] = 0;
                changed++;
            }
        }
        return changed;
    }

    /** @return blocks written (and acknowledged) in the open epoch: what a failover must roll back. */
    int pendingBlocks()
    {
        int count = 0;
        for (final long stamp : pending)
        {
            if (stamp != 0)
            {
                count++;
            }
        }
        return count;
    }

    /** SplitMix64's finaliser: a cheap bijection that spreads every input bit over the output. */
    private static long mix(final long value)
    {
        long z = value;
        z = (z ^ (z >>> 30)) * 0xBF58_476D_1CE4_E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D0_49BB_1331_11EBL;
        return z ^ (z >>> 31);
    }
}
