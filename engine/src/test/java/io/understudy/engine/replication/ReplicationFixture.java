package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.overlay.OverlayStorage;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Real files through {@link ThreadPoolIoEngine}, 64 MiB disks as in spec 4.2, exact-byte assertions, and a duty
 * cycle thread for the components' {@code doWork()} (deadlines, back-pressure retries). Closes everything.
 */
final class ReplicationFixture implements AutoCloseable
{
    static final long MIB = 1 << 20;
    static final long SIZE = 64 * MIB;
    static final int CLUSTER = 64 * 1024;
    static final int QUEUE_DEPTH = 16;
    static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private static final int CHUNK = (int)(8 * MIB);

    final IoEngine engine = new ThreadPoolIoEngine(2);
    final Arena arena = Arena.ofShared();
    final MemorySegment buffer = arena.allocate(32 * MIB, 4096);
    private final MemorySegment expected = arena.allocate(CHUNK, 4096);
    private final MemorySegment check = arena.allocate(CHUNK, 4096);
    private final Path dir;
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private final List<IntSupplier> dutyCycles = new ArrayList<>();
    private final Thread agent;
    private volatile boolean running = true;

    ReplicationFixture(final Path dir)
    {
        this.dir = dir;
        agent = new Thread(() ->
        {
            while (running)
            {
                int work = 0;
                synchronized (dutyCycles)
                {
                    for (final IntSupplier cycle : dutyCycles)
                    {
                        work += cycle.getAsInt();
                    }
                }
                if (work == 0)
                {
                    LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(200));
                }
            }
        }, "replication-duty-cycle");
        agent.setDaemon(true);
        agent.start();
    }

    /** Runs {@code cycle} on the duty-cycle thread until the fixture closes. */
    void dutyCycle(final IntSupplier cycle)
    {
        synchronized (dutyCycles)
        {
            dutyCycles.add(cycle);
        }
    }

    /** Creates a disk file of {@link #SIZE} filled with {@code pattern} and opens it read-write. */
    BlockDevice disk(final String name, final int pattern) throws IOException
    {
        final Path path = dir.resolve(name);
        try (RandomAccessFile raf = new RandomAccessFile(path.toFile(), "rw"))
        {
            raf.setLength(SIZE);
        }
        final BlockDevice device = engine.open(path, FileOptions.readWrite());
        closeables.add(device);
        if (pattern != 0)
        {
            fill(device, 0, SIZE, pattern);
        }
        return device;
    }

    /** A sparse overlay storage file of {@code size} (owned by the overlay that uses it). */
    OverlayStorage storage(final String name, final long size) throws IOException
    {
        return FileOverlayStorage.create(engine, dir.resolve(name), size, FileOptions.readWrite());
    }

    /** Registers something to close before the disks (replication components). */
    <T extends AutoCloseable> T owned(final T component)
    {
        closeables.add(component);
        return component;
    }

    /** Writes {@code pattern} over {@code [offset, offset + length)} and expects full success. */
    void fill(final BlockDevice device, final long offset, final long length, final int pattern)
    {
        assertEquals(0, write(device, offset, length, pattern), "write of " + length + " at " + offset);
    }

    /** @return 0 if every chunk was written in full, else the first negated errno. */
    int write(final BlockDevice device, final long offset, final long length, final int pattern)
    {
        final int chunk = (int)Math.min(length, buffer.byteSize());
        buffer.asSlice(0, chunk).fill((byte)pattern);
        for (long done = 0; done < length; done += chunk)
        {
            final long at = offset + done;
            final int len = (int)Math.min(chunk, length - done);
            final int rc = SyncIo.run((c, k) -> device.write(at, buffer, len, 0, c, k));
            if (rc != len)
            {
                return rc < 0 ? rc : -Errno.EIO;
            }
        }
        return 0;
    }

    /** Asserts every byte of {@code [offset, offset + length)} equals {@code pattern}. */
    void assertBytes(final BlockDevice device, final long offset, final long length, final int pattern)
    {
        expected.fill((byte)pattern);
        for (long done = 0; done < length; done += CHUNK)
        {
            final long at = offset + done;
            final int len = (int)Math.min(CHUNK, length - done);
            final int rc = SyncIo.run((c, k) -> device.read(at, check, len, c, k));
            assertEquals(len, rc, "read of " + len + " at " + at + ": " + Errno.name(rc));
            final long mismatch = MemorySegment.mismatch(check, 0, len, expected, 0, len);
            if (mismatch >= 0)
            {
                throw new AssertionError(String.format("byte at %d is 0x%02x, expected 0x%02x", at + mismatch,
                    check.get(java.lang.foreign.ValueLayout.JAVA_BYTE, mismatch), pattern));
            }
        }
    }

    /** Asserts two devices hold the same bytes over {@code [0, SIZE)}. */
    void assertSameBytes(final BlockDevice a, final BlockDevice b)
    {
        for (long at = 0; at < SIZE; at += CHUNK)
        {
            final long offset = at;
            assertEquals(CHUNK, SyncIo.run((c, k) -> a.read(offset, check, CHUNK, c, k)));
            assertEquals(CHUNK, SyncIo.run((c, k) -> b.read(offset, expected, CHUNK, c, k)));
            final long mismatch = MemorySegment.mismatch(check, 0, CHUNK, expected, 0, CHUNK);
            if (mismatch >= 0)
            {
                throw new AssertionError("devices differ at byte " + (at + mismatch));
            }
        }
    }

    int read(final BlockDevice device, final long offset, final int length)
    {
        return SyncIo.run((c, k) -> device.read(offset, check, length, c, k));
    }

    @Override
    public void close() throws Exception
    {
        running = false;
        agent.join(5000);
        for (int i = closeables.size() - 1; i >= 0; i--)
        {
            closeables.get(i).close();
        }
        engine.close();
        arena.close();
    }
}
