package io.understudy.engine.overlay;

import io.understudy.engine.device.IoCompletion;
import org.agrona.concurrent.ManyToManyConcurrentArrayQueue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Volatile overlay storage in off-heap memory, allocated in fixed chunks on first write and freed when a
 * release covers a whole chunk, so memory follows what the overlay holds rather than the disk size.
 * Requests complete synchronously on the calling thread.
 * <pre>
 *   disk offsets  [0 ........ chunk) [chunk ..... 2 chunk) [2 chunk ... 3 chunk) ...
 *   chunk table   |  segment or null |  null (reads zero)  |  segment            | ...
 * </pre>
 * Each chunk has its own shared arena so that it can be freed alone. Closing a shared arena costs a handshake
 * with every thread (tens of microseconds, milliseconds under load), and checkpoints release and re-allocate
 * chunks all the time, so released chunks are first kept on a bounded spare list and reused; only chunks
 * beyond it are freed. Freeing a chunk that another thread is still reading would fail that access (the
 * arena is closed, never unmapped under it); the overlay never does it, because it releases only clusters
 * nobody can reach any more.
 */
public final class MemoryOverlayStorage implements OverlayStorage
{
    /** Default chunk: as large as the largest cluster, small enough to follow the dirty part. */
    public static final int DEFAULT_CHUNK_SIZE = 1 << 20;
    /** Default number of released chunks kept for reuse. */
    public static final int DEFAULT_SPARE_CHUNKS = 64;

    private final long size;
    private final int chunkShift;
    private final AtomicReferenceArray<Chunk> chunks;
    private final ManyToManyConcurrentArrayQueue<Chunk> spares;

    public MemoryOverlayStorage(final long size)
    {
        this(size, DEFAULT_CHUNK_SIZE);
    }

    public MemoryOverlayStorage(final long size, final int chunkSize)
    {
        this(size, chunkSize, DEFAULT_SPARE_CHUNKS);
    }

    /**
     * @param size        addressable bytes.
     * @param chunkSize   allocation unit, a power of two >= 4096.
     * @param spareChunks released chunks kept for reuse instead of being freed.
     */
    public MemoryOverlayStorage(final long size, final int chunkSize, final int spareChunks)
    {
        if (size <= 0 || Integer.bitCount(chunkSize) != 1 || chunkSize < 4096)
        {
            throw new IllegalArgumentException("size must be positive and chunkSize a power of two >= 4096: " +
                size + ", " + chunkSize);
        }
        this.size = size;
        this.chunkShift = Integer.numberOfTrailingZeros(chunkSize);
        final long count = (size + chunkSize - 1) >>> chunkShift;
        if (count > Integer.MAX_VALUE)
        {
            throw new IllegalArgumentException("too many chunks for " + size + " bytes: use larger chunks");
        }
        this.chunks = new AtomicReferenceArray<>((int)count);
        this.spares = new ManyToManyConcurrentArrayQueue<>(Math.max(1, spareChunks));
    }

    @Override
    public long size()
    {
        return size;
    }

    @Override
    public int alignment()
    {
        return 1;
    }

    /** @return bytes of memory holding clusters now (spare chunks not counted). */
    public long allocatedBytes()
    {
        long total = 0;
        for (int i = 0; i < chunks.length(); i++)
        {
            total += chunks.get(i) == null ? 0 : 1L << chunkShift;
        }
        return total;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        long done = 0;
        while (done < length)
        {
            final long at = offset + done;
            final int index = (int)(at >>> chunkShift);
            final long within = at & ((1L << chunkShift) - 1);
            final long n = Math.min(length - done, (1L << chunkShift) - within);
            final Chunk chunk = chunks.get(index);
            if (chunk == null)
            {
                buffer.asSlice(done, n).fill((byte)0);
            }
            else
            {
                MemorySegment.copy(chunk.memory, within, buffer, done, n);
            }
            done += n;
        }
        completion.onComplete(cookie, length);
        return true;
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        long done = 0;
        while (done < length)
        {
            final long at = offset + done;
            final int index = (int)(at >>> chunkShift);
            final long within = at & ((1L << chunkShift) - 1);
            final long n = Math.min(length - done, (1L << chunkShift) - within);
            MemorySegment.copy(buffer, done, chunk(index).memory, within, n);
            done += n;
        }
        completion.onComplete(cookie, length);
        return true;
    }

    @Override
    public boolean release(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        long done = 0;
        while (done < length)
        {
            final long at = offset + done;
            final int index = (int)(at >>> chunkShift);
            final long within = at & ((1L << chunkShift) - 1);
            final long n = Math.min(length - done, (1L << chunkShift) - within);
            if (n == 1L << chunkShift)
            {
                final Chunk chunk = chunks.getAndSet(index, null);
                if (chunk != null && !spares.offer(chunk))
                {
                    chunk.arena.close();
                }
            }
            // A partly released chunk keeps its memory: the overlay rewrites a cluster whole before reading it.
            done += n;
        }
        completion.onComplete(cookie, 0);
        return true;
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        completion.onComplete(cookie, 0);
        return true;
    }

    @Override
    public void close()
    {
        for (int i = 0; i < chunks.length(); i++)
        {
            final Chunk chunk = chunks.getAndSet(i, null);
            if (chunk != null)
            {
                chunk.arena.close();
            }
        }
        Chunk spare;
        while ((spare = spares.poll()) != null)
        {
            spare.arena.close();
        }
    }

    private Chunk chunk(final int index)
    {
        final Chunk existing = chunks.get(index);
        if (existing != null)
        {
            return existing;
        }
        Chunk created = spares.poll();
        if (created == null)
        {
            final Arena arena = Arena.ofShared();
            created = new Chunk(arena, arena.allocate(1L << chunkShift, 4096));
        }
        // Two first writers into one chunk: the loser keeps its copy as a spare and uses the winner's.
        if (chunks.compareAndSet(index, null, created))
        {
            return created;
        }
        if (!spares.offer(created))
        {
            created.arena.close();
        }
        return chunks.get(index);
    }

    private record Chunk(Arena arena, MemorySegment memory)
    {
    }
}
