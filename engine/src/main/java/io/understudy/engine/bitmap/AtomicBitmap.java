package io.understudy.engine.bitmap;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * A fixed-size, lock-free bitmap in off-heap memory (one bit per cluster of a disk) whose clear-all costs
 * follow the dirty part, not the size: a 1 TiB disk at 4 KiB clusters has 2^28 bits, yet emptying a
 * bitmap with 1 GiB dirty touches only the words that were ever set since the last clear-all.
 * <p>
 * <b>Layout.</b> A hierarchy of levels of 64-bit words, stored back to back in one segment (native byte
 * order, every word 8-byte aligned). Level 0 holds the bits. Bit {@code i} of level {@code k+1} is a
 * <em>summary</em> of word {@code i} of level {@code k}: it is set whenever that word may be non-zero.
 * Levels are added until one word covers the level below.
 * <pre>
 *   word offset 0                     L0 words                      L1 words   L2 ..  top (1 word)
 *   +--------+--------+-- ... --+--------+--------+-- ... --+----------+---+-- .. --+--------+
 *   | w0     | w1     |         | w(n-1) | s0     | s1      |          |   |        | t      |
 *   +--------+--------+-- ... --+--------+--------+-- ... --+----------+---+-- .. --+--------+
 *    bit b of L0 word w = cluster 64w+b      bit j of L1 word s = "L0 word 64s+j may be non-zero"
 *   1 TiB @ 4 KiB: L0 = 2^22 words (32 MiB), L1 = 2^16 (512 KiB), L2 = 1024 (8 KiB), L3 = 16, L4 = 1.
 * </pre>
 * Summaries are a <em>superset</em>: single-bit and range clears leave them set (clearing a summary
 * when a word drops to zero would race with a setter that has already read the summary as set), and
 * only {@link #clearAll} resets them. Scans and clear-all descend only through set summary bits, so
 * their cost is proportional to the number of words dirtied since the last clear-all, times the number
 * of levels (at most 5 for 2^28 bits), plus at most one word per level above.
 * <p>
 * <b>Memory ordering.</b> Every access to a word is a volatile (sequentially consistent) VarHandle
 * access, except the release store with which {@link #clearAll} zeroes a level-0 word (argued there). The
 * invariant is: <em>once no clear-all is running, a clear summary bit implies a zero
 * word below it</em>. A setter changes the level-0 word first and then sets the summary bits upwards,
 * stopping at the first that is already set. {@link #clearAll} works top-down: it atomically takes
 * (get-and-set to zero) a summary word and only then zeroes the words whose bits it took. Consider a
 * setter (S1: set bit in word w, S2: set summary bit of w) racing a clear (C1: take the summary word,
 * C2: zero word w):
 * <ul>
 *   <li>S1 before C2: the bit is cleared by C2, and the set is ordered before the clear; S2 may leave a
 *   stale summary bit, which is allowed (superset).</li>
 *   <li>S1 after C2: C1 precedes S1, hence S2's read of the summary (after S1 in program order) sees the
 *   cleared word, so S2 sets the summary again: the new bit stays reachable.</li>
 * </ul>
 * The same argument holds between each pair of adjacent levels. A {@link #testAndSet} that returned
 * {@code true} concurrently with a clear-all may therefore find its bit cleared afterwards; it is
 * linearised before the clear. Scans ({@link #nextSetBit}, {@link #cardinality}) running concurrently
 * with writers return an answer that was true for each word at the time it was read; they are exact
 * when the bitmap is quiescent.
 * <p>
 * Thread-safe and allocation-free after construction. The memory is either owned (allocated from a
 * shared arena and freed by {@link #close}) or supplied by the caller (e.g. a file mapping by
 * {@link BitmapFile}, which then owns it).
 */
public final class AtomicBitmap implements AutoCloseable
{
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();
    private static final int MAX_LEVELS = 16;

    private final long bitCount;
    private final MemorySegment words;
    private final Arena arena;
    /** Byte offset of each level's first word; the last level is a single word. */
    private final long[] levelOffset;
    private final int top;

    /** Allocates a zeroed bitmap of {@code bitCount} bits from its own shared arena. */
    public AtomicBitmap(final long bitCount)
    {
        this(bitCount, null);
    }

    /**
     * Wraps caller-owned memory of at least {@link #requiredBytes} bytes, 8-byte aligned, with its current
     * contents (zeroed memory is an empty bitmap; a previously used one keeps its bits).
     */
    public AtomicBitmap(final long bitCount, final MemorySegment memory)
    {
        if (bitCount <= 0)
        {
            throw new IllegalArgumentException("bitCount must be positive: " + bitCount);
        }
        this.bitCount = bitCount;
        final long[] offsets = new long[MAX_LEVELS];
        int level = 0;
        long wordsInLevel = wordsFor(bitCount);
        long offset = 0;
        while (true)
        {
            offsets[level] = offset;
            offset += wordsInLevel * Long.BYTES;
            if (wordsInLevel == 1)
            {
                break;
            }
            wordsInLevel = wordsFor(wordsInLevel);
            level++;
        }
        this.top = level;
        this.levelOffset = Arrays.copyOf(offsets, level + 1);
        if (memory == null)
        {
            this.arena = Arena.ofShared();
            this.words = arena.allocate(offset, 64);
        }
        else
        {
            if (memory.byteSize() < offset || memory.address() % Long.BYTES != 0)
            {
                throw new IllegalArgumentException(
                    "memory must be 8-byte aligned and hold " + offset + " bytes: " + memory);
            }
            this.arena = null;
            this.words = memory;
        }
    }

    /** @return bytes of memory a bitmap of {@code bitCount} bits needs, summaries included. */
    public static long requiredBytes(final long bitCount)
    {
        long total = 0;
        long wordsInLevel = wordsFor(bitCount);
        while (true)
        {
            total += wordsInLevel * Long.BYTES;
            if (wordsInLevel == 1)
            {
                return total;
            }
            wordsInLevel = wordsFor(wordsInLevel);
        }
    }

    public long bitCount()
    {
        return bitCount;
    }

    /** @return true if the bit is set (volatile read). */
    public boolean get(final long bit)
    {
        checkIndex(bit);
        return (word(0, bit >>> 6) & (1L << bit)) != 0;
    }

    /** Sets the bit. @return true if this call changed it from clear to set. */
    public boolean testAndSet(final long bit)
    {
        checkIndex(bit);
        final long index = bit >>> 6;
        final long mask = 1L << bit;
        final long address = address(0, index);
        // A volatile read first: an already set bit (the common case on hot paths) costs no write.
        if (((long)WORD.getVolatile(words, address) & mask) != 0)
        {
            return false;
        }
        final long previous = (long)WORD.getAndBitwiseOr(words, address, mask);
        if ((previous & mask) != 0)
        {
            return false;
        }
        markSummaries(0, index);
        return true;
    }

    /** Clears the bit. @return true if this call changed it from set to clear. */
    public boolean testAndClear(final long bit)
    {
        checkIndex(bit);
        final long address = address(0, bit >>> 6);
        final long mask = 1L << bit;
        if (((long)WORD.getVolatile(words, address) & mask) == 0)
        {
            return false;
        }
        return ((long)WORD.getAndBitwiseAnd(words, address, ~mask) & mask) != 0;
    }

    /** Sets bits {@code [from, to)}. */
    public void setRange(final long from, final long to)
    {
        checkRange(from, to);
        long bit = from;
        while (bit < to)
        {
            final long index = bit >>> 6;
            final long wordEnd = Math.min(to, (index + 1) << 6);
            final long mask = rangeMask(bit, wordEnd);
            final long address = address(0, index);
            if (((long)WORD.getVolatile(words, address) & mask) != mask)
            {
                WORD.getAndBitwiseOr(words, address, mask);
                markSummaries(0, index);
            }
            bit = wordEnd;
        }
    }

    /** Clears bits {@code [from, to)}; summaries stay set (superset, see the class comment). */
    public void clearRange(final long from, final long to)
    {
        checkRange(from, to);
        long bit = from;
        while (bit < to)
        {
            final long index = bit >>> 6;
            final long wordEnd = Math.min(to, (index + 1) << 6);
            final long mask = rangeMask(bit, wordEnd);
            final long address = address(0, index);
            if (((long)WORD.getVolatile(words, address) & mask) != 0)
            {
                WORD.getAndBitwiseAnd(words, address, ~mask);
            }
            bit = wordEnd;
        }
    }

    /** @return the first set bit in {@code [from, bitCount)}, or -1. */
    public long nextSetBit(final long from)
    {
        if (from < 0)
        {
            throw new IndexOutOfBoundsException("negative bit index: " + from);
        }
        return from >= bitCount ? -1 : nextSet(0, from);
    }

    /** @return the first clear bit in {@code [from, bitCount)}, or -1. */
    public long nextClearBit(final long from)
    {
        if (from < 0)
        {
            throw new IndexOutOfBoundsException("negative bit index: " + from);
        }
        if (from >= bitCount)
        {
            return -1;
        }
        long index = from >>> 6;
        long candidates = ~word(0, index) & (-1L << from);
        final long lastIndex = (bitCount - 1) >>> 6;
        while (true)
        {
            if (candidates != 0)
            {
                final long bit = (index << 6) + Long.numberOfTrailingZeros(candidates);
                return bit < bitCount ? bit : -1;
            }
            if (++index > lastIndex)
            {
                return -1;
            }
            // A clear summary bit proves the word is zero without reading it.
            candidates = summarySet(0, index) ? ~word(0, index) : -1L;
        }
    }

    /** @return the number of set bits; visits only words whose summary bit is set. */
    public long cardinality()
    {
        long count = 0;
        long index = top == 0 ? 0 : nextSet(1, 0);
        while (index >= 0)
        {
            count += Long.bitCount(word(0, index));
            index = top == 0 || index + 1 >= wordsIn(0) ? -1 : nextSet(1, index + 1);
        }
        return count;
    }

    /** @return true if no bit is set (reads the summaries, so cheap on a clean bitmap). */
    public boolean isEmpty()
    {
        return nextSetBit(0) < 0;
    }

    /** Clears every bit, visiting only words dirtied since the last clear-all (see the class comment). */
    public void clearAll()
    {
        take(top, 0, null);
    }

    /**
     * Clears every bit like {@link #clearAll} and sets in {@code sink} each bit that was set here, in the same
     * walk: hands a dirty set over to another bitmap without visiting clean words.
     */
    public void drainTo(final AtomicBitmap sink)
    {
        if (sink.bitCount != bitCount || sink == this)
        {
            throw new IllegalArgumentException("sink must be another bitmap of " + bitCount + " bits");
        }
        take(top, 0, sink);
    }

    /** Frees the memory if this bitmap allocated it. No access may follow or run concurrently. */
    @Override
    public void close()
    {
        if (arena != null)
        {
            arena.close();
        }
    }

    private void take(final int level, final long index, final AtomicBitmap sink)
    {
        if (level == 0 && sink == null)
        {
            // A release store is enough for a bit word: our take of its summary happens-before it, and a
            // setter whose atomic update comes after it in the word's modification order synchronises with
            // it, so that setter's later read of the summary sees the take and sets the summary again.
            WORD.setRelease(words, address(0, index), 0L);
            return;
        }
        // Take the whole word atomically before descending: a setter that sets a bit below after this point
        // also sets this summary bit again (see the class comment).
        final long taken = (long)WORD.getAndSet(words, address(level, index), 0L);
        if (level == 0)
        {
            if (sink != null && taken != 0)
            {
                final long address = sink.address(0, index);
                WORD.getAndBitwiseOr(sink.words, address, taken);
                sink.markSummaries(0, index);
            }
            return;
        }
        long remaining = taken;
        while (remaining != 0)
        {
            final long child = (index << 6) + Long.numberOfTrailingZeros(remaining);
            remaining &= remaining - 1;
            take(level - 1, child, sink);
        }
    }

    private long nextSet(final int level, final long from)
    {
        long index = from >>> 6;
        long bits = word(level, index) & (-1L << from);
        while (true)
        {
            if (bits != 0)
            {
                return (index << 6) + Long.numberOfTrailingZeros(bits);
            }
            if (level == top || index + 1 >= wordsIn(level))
            {
                return -1;
            }
            // Ask the summary for the next word that may be non-zero; a stale summary bit leads to a zero
            // word, in which case the search continues from there.
            index = nextSet(level + 1, index + 1);
            if (index < 0)
            {
                return -1;
            }
            bits = word(level, index);
        }
    }

    private void markSummaries(final int level, final long index)
    {
        long child = index;
        for (int parent = level + 1; parent <= top; parent++)
        {
            final long mask = 1L << child;
            final long address = address(parent, child >>> 6);
            // Volatile read after the volatile write below it: sees any clear-all's take that preceded
            // our write (see the class comment), so an already-set summary really covers our word.
            if (((long)WORD.getVolatile(words, address) & mask) != 0)
            {
                return;
            }
            WORD.getAndBitwiseOr(words, address, mask);
            child >>>= 6;
        }
    }

    private boolean summarySet(final int level, final long index)
    {
        return level == top || (word(level + 1, index >>> 6) & (1L << index)) != 0;
    }

    private long word(final int level, final long index)
    {
        return (long)WORD.getVolatile(words, address(level, index));
    }

    private long address(final int level, final long index)
    {
        return levelOffset[level] + (index << 3);
    }

    private long wordsIn(final int level)
    {
        return level == top ? 1 : (levelOffset[level + 1] - levelOffset[level]) >>> 3;
    }

    private static long rangeMask(final long from, final long to)
    {
        // Bits [from, to) of one word, to - from in [1, 64].
        return (-1L << from) & (-1L >>> (64 - (to - ((from >>> 6) << 6))));
    }

    private static long wordsFor(final long bits)
    {
        return (bits + 63) >>> 6;
    }

    private void checkIndex(final long bit)
    {
        if (bit < 0 || bit >= bitCount)
        {
            throw new IndexOutOfBoundsException("bit " + bit + " outside [0, " + bitCount + ")");
        }
    }

    private void checkRange(final long from, final long to)
    {
        if (from < 0 || to > bitCount || from > to)
        {
            throw new IndexOutOfBoundsException("range [" + from + ", " + to + ") outside [0, " + bitCount + ")");
        }
    }
}
