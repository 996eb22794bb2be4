package io.understudy.nbd.interop;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.overlay.OverlayStorage;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The Understudy side of an interop test: real files through {@link ThreadPoolIoEngine}, a duty-cycle thread for
 * the replication components' {@code doWork()}, synchronous block I/O with deadlines, and external tools. Stops the
 * duty cycle, closes what it registered in reverse order, then the engine and the arena.
 */
final class InteropFixture implements AutoCloseable
{
    static final long MIB = 1 << 20;
    static final long SIZE = 64 * MIB;
    static final int CLUSTER = 64 * 1024;
    static final int QUEUE_DEPTH = 16;
    static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private static final int CHUNK = (int)MIB;

    final ThreadPoolIoEngine engine = new ThreadPoolIoEngine(2);
    private final Arena arena = Arena.ofShared();
    private final MemorySegment buffer = arena.allocate(CHUNK, 4096);
    private final Path dir;
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private final List<IntSupplier> dutyCycles = new ArrayList<>();
    private final Thread agent;
    private volatile boolean running = true;

    InteropFixture(final Path dir)
    {
        this.dir = dir;
        agent = Thread.ofPlatform().name("interop-duty-cycle").daemon(true).start(() ->
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
        });
    }

    /** Creates a {@link #SIZE} file filled with {@code pattern}. */
    Path file(final String name, final int pattern) throws IOException
    {
        final Path path = dir.resolve(name);
        final ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK);
        while (chunk.hasRemaining())
        {
            chunk.put((byte)pattern);
        }
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING))
        {
            for (long at = 0; at < SIZE; at += CHUNK)
            {
                chunk.clear();
                while (chunk.hasRemaining())
                {
                    channel.write(chunk, at + chunk.position());
                }
            }
        }
        return path;
    }

    /** Opens {@code path} read-write; closed with the fixture. */
    BlockDevice open(final Path path) throws IOException
    {
        return owned(engine.open(path, FileOptions.readWrite()));
    }

    /** A sparse overlay storage of {@link #SIZE} (owned by the overlay that uses it). */
    OverlayStorage storage(final String name) throws IOException
    {
        return FileOverlayStorage.create(engine, dir.resolve(name), SIZE, FileOptions.readWrite());
    }

    /** Registers something to close, before what was registered earlier. */
    <T extends AutoCloseable> T owned(final T closeable)
    {
        closeables.add(closeable);
        return closeable;
    }

    /** Runs {@code cycle} on the duty-cycle thread until the fixture closes. */
    void dutyCycle(final IntSupplier cycle)
    {
        synchronized (dutyCycles)
        {
            dutyCycles.add(cycle);
        }
    }

    /** A submission to a device: returns its accept flag. */
    @FunctionalInterface
    interface Submission
    {
        boolean submit(IoCompletion completion, long cookie);
    }

    /** Submits (retrying on back-pressure) and waits for the result, 10 s at most for each. */
    static int run(final Submission submission)
    {
        final CountDownLatch done = new CountDownLatch(1);
        final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
        final IoCompletion completion = (cookie, r) ->
        {
            result.set(r);
            done.countDown();
        };
        final long deadline = System.nanoTime() + 10 * SECOND;
        while (!submission.submit(completion, 0))
        {
            if (System.nanoTime() - deadline > 0)
            {
                fail("request refused (back-pressure) for 10 s");
            }
            LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(50));
        }
        try
        {
            if (!done.await(10, TimeUnit.SECONDS))
            {
                fail("request did not complete within 10 s");
            }
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", ex);
        }
        return result.get();
    }

    /** Writes {@code pattern} over {@code [offset, offset + length)} in 1 MiB requests, each in full. */
    void fill(final BlockDevice device, final long offset, final long length, final int pattern)
    {
        buffer.fill((byte)pattern);
        for (long done = 0; done < length; done += CHUNK)
        {
            final long at = offset + done;
            final int len = (int)Math.min(CHUNK, length - done);
            assertEquals(len, run((c, k) -> device.write(at, buffer, len, 0, c, k)), "write of " + len + " at " + at);
        }
    }

    /** Runs an external tool in the test directory, asserts exit status 0 within 10 s, returns its output. */
    String tool(final String... command) throws IOException, InterruptedException
    {
        final Path log = Files.createTempFile(dir, "tool", ".log");
        final Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
            .redirectOutput(log.toFile()).start();
        try
        {
            if (!process.waitFor(10, TimeUnit.SECONDS))
            {
                fail(String.join(" ", command) + " timed out:\n" + Files.readString(log, StandardCharsets.UTF_8));
            }
            final String output = Files.readString(log, StandardCharsets.UTF_8);
            assertEquals(0, process.exitValue(), String.join(" ", command) + " failed:\n" + output);
            return output;
        }
        finally
        {
            process.destroyForcibly();
            Files.deleteIfExists(log);
        }
    }

    @Override
    public void close() throws Exception
    {
        running = false;
        agent.join(5000);
        Exception first = null;
        for (int i = closeables.size() - 1; i >= 0; i--)
        {
            try
            {
                closeables.get(i).close();
            }
            catch (final Exception ex)
            {
                first = first == null ? ex : first;
            }
        }
        engine.close();
        arena.close();
        if (first != null)
        {
            throw first;
        }
    }
}
