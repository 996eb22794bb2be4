package io.understudy.engine.io.uring;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.BufferPool;
import io.understudy.engine.io.FileOptions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What only the io_uring backend has: its ring agent's wake-ups, its slot bound and its fixed buffers. */
@Timeout(60)
class UringIoEngineTest
{
    @TempDir
    Path dir;

    @Test
    void probeRunsANopRoundTrip() throws Exception
    {
        UringIoEngine.probe();
    }

    /**
     * Queue depth 1 from several threads: every request finds the agent asleep in io_uring_enter or about
     * to sleep, the window where a lost wake-up would hang the submitter (and time the test out).
     */
    @Test
    void noWakeUpIsLostWhenSubmittersPingPongAtQueueDepthOne() throws Exception
    {
        final Path path = file("pingpong.img");
        final int threads = 3;
        final int rounds = 20_000;
        try (UringIoEngine engine = new UringIoEngine(); BufferPool pool = new BufferPool(4096, threads);
            BlockDevice device = engine.open(path, FileOptions.readWrite()))
        {
            final AtomicReference<String> failure = new AtomicReference<>();
            final Thread[] workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                final MemorySegment buffer = pool.buffer(pool.acquire());
                final long offset = 4096L * t;
                workers[t] = Thread.ofPlatform().start(() ->
                {
                    final Thread self = Thread.currentThread();
                    final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
                    final IoCompletion completion = (cookie, res) ->
                    {
                        result.set(res);
                        LockSupport.unpark(self);
                    };
                    for (int i = 0; i < rounds && failure.get() == null; i++)
                    {
                        buffer.set(JAVA_LONG, 0, i);
                        result.set(Integer.MIN_VALUE);
                        final boolean write = (i & 1) == 0;
                        final boolean accepted = write ?
                            device.write(offset, buffer, 4096, 0, completion, i) :
                            device.read(offset, buffer, 4096, completion, i);
                        if (!accepted)
                        {
                            failure.compareAndSet(null, "back-pressure at queue depth 1");
                            return;
                        }
                        while (result.get() == Integer.MIN_VALUE)
                        {
                            LockSupport.park();
                        }
                        if (result.get() != 4096 || buffer.get(JAVA_LONG, 0) != (write ? i : i - 1))
                        {
                            failure.compareAndSet(null, "round " + i + ": result " + result.get());
                        }
                    }
                });
            }
            for (final Thread worker : workers)
            {
                worker.join();
            }
            assertNull(failure.get());
        }
    }

    @Test
    void theEngineNeverHasMoreRequestsOutThanItsCompletionQueueHolds() throws Exception
    {
        final Path path = file("bound.img");
        try (UringIoEngine engine = new UringIoEngine(64); BufferPool pool = new BufferPool(4096, 1);
            BlockDevice device = engine.open(path, FileOptions.readWrite().withQueueDepth(4096)))
        {
            assertEquals(127, engine.capacity(), "cq_entries (2 x 64) minus the wake-up read");
            final MemorySegment buffer = pool.buffer(pool.acquire());
            final CountDownLatch gate = new CountDownLatch(1);
            final AtomicInteger completed = new AtomicInteger();
            final IoCompletion held = (cookie, result) ->
            {
                try
                {
                    gate.await();
                }
                catch (final InterruptedException e)
                {
                    Thread.currentThread().interrupt();
                }
                completed.incrementAndGet();
            };
            int accepted = 0;
            try
            {
                while (accepted < 1000 && device.read(0, buffer, 4096, held, accepted))
                {
                    accepted++;
                }
            }
            finally
            {
                gate.countDown();
            }
            // The agent blocks in the first callback, whose slot is already free again: one extra at most.
            assertTrue(accepted == engine.capacity() || accepted == engine.capacity() + 1, "accepted " + accepted);
            while (completed.get() < accepted)
            {
                LockSupport.parkNanos(100_000);
            }
        }
    }

    @Test
    void aThrowingCallbackIsCountedAndTheRingKeepsServing() throws Exception
    {
        final Path path = file("throwing.img");
        try (UringIoEngine engine = new UringIoEngine(); BufferPool pool = new BufferPool(4096, 1);
            BlockDevice device = engine.open(path, FileOptions.readWrite()))
        {
            final MemorySegment buffer = pool.buffer(pool.acquire());
            final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
            assertTrue(device.read(0, buffer, 4096, (cookie, res) ->
            {
                throw new IllegalStateException("test: a broken completion handler");
            }, 1));
            assertTrue(device.read(0, buffer, 4096, (cookie, res) -> result.set(res), 2));
            while (result.get() == Integer.MIN_VALUE)
            {
                LockSupport.parkNanos(100_000);
            }
            assertEquals(4096, result.get());
            assertEquals(1, engine.callbackErrors());
        }
    }

    /**
     * The ring's fd is closed behind the agent's back (found in /proc/self/fd, as an operator's or a bug's
     * stray close would hit it): the next io_uring_enter fails with EBADF for good. The request that provoked
     * it and every later one complete with EIO, the error reaches the engine's handler exactly once, and
     * closing the device and the engine still returns.
     */
    @Test
    void aRingThatFailsForGoodFailsEveryRequestWithEioAndReportsOnce() throws Exception
    {
        final Path path = file("broken.img");
        try (UringIoEngine engine = new UringIoEngine(); BufferPool pool = new BufferPool(4096, 1);
            BlockDevice device = engine.open(path, FileOptions.readWrite()))
        {
            final MemorySegment buffer = pool.buffer(pool.acquire());
            buffer.fill((byte)0x5A);
            assertEquals(4096, run(device, buffer, true));
            buffer.fill((byte)0);
            assertEquals(4096, run(device, buffer, false));
            assertEquals(0x5A5A5A5A5A5A5A5AL, buffer.get(JAVA_LONG, 4088));

            final int ringFd = newestRingFd();
            try (Arena scratch = Arena.ofConfined())
            {
                assertEquals(0, UringSyscalls.close(scratch.allocate(UringSyscalls.ERRNO_LAYOUT), ringFd));
            }
            assertEquals(0, engine.ringError());

            assertEquals(-Errno.EIO, run(device, buffer, false), "the request in the ring when it broke");
            assertEquals(-Errno.EBADF, engine.ringError());
            buffer.fill((byte)0x77);
            for (int i = 0; i < 3; i++)
            {
                assertEquals(-Errno.EIO, run(device, buffer, i % 2 == 0), "a request after the break");
            }
            assertEquals(1, engine.agentErrors());
        }
        final byte[] expected = new byte[4096];
        Arrays.fill(expected, (byte)0x5A);
        assertArrayEquals(expected, Arrays.copyOf(Files.readAllBytes(path), 4096), "no failed write was applied");
    }

    /** Submits one read or write of the whole buffer at offset 0 and waits for its result. */
    private static int run(final BlockDevice device, final MemorySegment buffer, final boolean write)
    {
        final Thread self = Thread.currentThread();
        final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
        final IoCompletion completion = (cookie, res) ->
        {
            result.set(res);
            LockSupport.unpark(self);
        };
        assertTrue(write ?
            device.write(0, buffer, (int)buffer.byteSize(), 0, completion, 0) :
            device.read(0, buffer, (int)buffer.byteSize(), completion, 0));
        while (result.get() == Integer.MIN_VALUE)
        {
            LockSupport.parkNanos(100_000);
        }
        return result.get();
    }

    /** @return the highest-numbered io_uring fd of this process: the ring of the engine opened last. */
    private static int newestRingFd() throws Exception
    {
        int newest = -1;
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(Path.of("/proc/self/fd")))
        {
            for (final Path fd : fds)
            {
                try
                {
                    if (Files.readSymbolicLink(fd).toString().equals("anon_inode:[io_uring]"))
                    {
                        newest = Math.max(newest, Integer.parseInt(fd.getFileName().toString()));
                    }
                }
                catch (final IOException ignored)
                {
                    // the directory stream's own fd is gone by the time it is read
                }
            }
        }
        assertTrue(newest >= 0, "no io_uring fd in /proc/self/fd");
        return newest;
    }

    @Test
    void requestsUseFixedBuffersOnlyWhenTheirBufferLiesInsideARegisteredSlab() throws Exception
    {
        try (BufferPool registered = new BufferPool(8192, 4); BufferPool other = new BufferPool(8192, 1);
            UringIoEngine engine = new UringIoEngine(UringIoEngine.DEFAULT_RING_ENTRIES, registered))
        {
            assertEquals("1 fixed buffer slab(s) registered", engine.fixedBufferStatus());
            final MemorySegment slab = registered.slab();
            assertEquals(0, engine.fixedBufferIndex(registered.buffer(2).address(), 8192));
            assertEquals(0, engine.fixedBufferIndex(slab.address(), slab.byteSize()));
            assertEquals(UringRequest.NOT_FIXED, engine.fixedBufferIndex(slab.address() + 4096, slab.byteSize()),
                "straddles the slab's end");
            assertEquals(UringRequest.NOT_FIXED, engine.fixedBufferIndex(other.buffer(0).address(), 4096));
        }
        try (UringIoEngine plain = new UringIoEngine())
        {
            assertEquals("no fixed buffers", plain.fixedBufferStatus());
            assertEquals(UringRequest.NOT_FIXED, plain.fixedBufferIndex(4096, 4096));
        }
    }

    /**
     * As an unprivileged user (uid 65534, RLIMIT_MEMLOCK 8 MiB here) registering a 16 MiB slab fails with
     * ENOMEM: the engine must say so and fall back to plain reads and writes that still work.
     */
    @Test
    void fixedBuffersFallBackToPlainIoWhenRlimitMemlockRefusesThem() throws Exception
    {
        final boolean root = "root".equals(System.getProperty("user.name"));
        Assumptions.assumeTrue(root && Files.isExecutable(Path.of("/usr/bin/setpriv")), "needs root and setpriv");
        final Path shared = Files.createTempDirectory(Path.of("/tmp"), "understudy-memlock");
        try
        {
            Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwxrwx"));
            final Path agrona = Path.of(org.agrona.concurrent.Agent.class.getProtectionDomain().getCodeSource()
                .getLocation().toURI());
            final Path agronaCopy = Files.copy(agrona, shared.resolve("agrona.jar"));
            Files.setPosixFilePermissions(agronaCopy, PosixFilePermissions.fromString("rw-r--r--"));
            final Path data = shared.resolve("data.img");
            try (RandomAccessFile file = new RandomAccessFile(data.toFile(), "rw"))
            {
                file.setLength(1 << 20);
            }
            Files.setPosixFilePermissions(data, PosixFilePermissions.fromString("rw-rw-rw-"));
            final String classes = Path.of(UringIoEngine.class.getProtectionDomain().getCodeSource().getLocation()
                .toURI()).toString();
            final String testClasses = Path.of(MemlockProbe.class.getProtectionDomain().getCodeSource().getLocation()
                .toURI()).toString();
            final String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            final Process process = new ProcessBuilder("/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                "--clear-groups", java, "--enable-native-access=ALL-UNNAMED",
                "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED", "-Xshare:off",
                "-cp", agronaCopy + ":" + classes + ":" + testClasses, MemlockProbe.class.getName(), data.toString())
                .directory(shared.toFile()).redirectErrorStream(true).start();
            final String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, process.waitFor(), output);
            assertTrue(output.contains("fixed buffers refused (ENOMEM: RLIMIT_MEMLOCK too low), using plain READ/WRITE"),
                output);
            assertTrue(output.contains("round trip 4096 4096 5eed5eed"), output);
        }
        finally
        {
            try (var files = Files.list(shared))
            {
                for (final Path p : files.toList())
                {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(shared);
        }
    }

    private Path file(final String name) throws Exception
    {
        final Path path = dir.resolve(name);
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.setLength(1 << 20);
        }
        return path;
    }
}
