package io.understudy.engine.io;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.posix.LibC;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The {@link BlockDevice} contract, run against every backend configuration ({@link Backend}): the thread
 * backend (2 workers, inline, flushes only on a worker, O_DIRECT) is the reference, io_uring (buffered,
 * O_DIRECT, fixed buffers) must behave exactly alike. Files live in /tmp (ext4, where O_DIRECT alignment is
 * enforced) unless a test needs tmpfs or a file system it mounts itself.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class BlockDeviceContractTest
{
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    // ------------------------------------------------------------------------------------------ data

    @ParameterizedTest
    @EnumSource(Backend.class)
    void randomReadsWritesAndZeroesMatchAnInMemoryModel(final Backend backend) throws Exception
    {
        final long seed = System.nanoTime();
        final String context = backend + " seed=" + seed;
        final Random random = new Random(seed);
        final int size = 8 * MIB;
        final byte[] model = new byte[size];
        final Path path = newFile("model.img", size);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            final int alignment = device.alignment();
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            final byte[] data = new byte[Backend.BUFFER_SIZE];
            for (int i = 0; i < 300; i++)
            {
                final int length = alignDown(1 + random.nextInt(Backend.BUFFER_SIZE), alignment, alignment);
                final long offset = alignDown(random.nextInt(size - length + 1), alignment, 0);
                final String step = context + " step " + i + " [" + offset + ", +" + length + ")";
                final int kind = random.nextInt(10);
                if (kind < 4)
                {
                    random.nextBytes(data);
                    MemorySegment.copy(data, 0, buffer, JAVA_BYTE, 0, length);
                    final int flags = random.nextInt(4) == 0 ? BlockDevice.FLAG_FUA : 0;
                    assertEquals(length, call((c, k) -> device.write(offset, buffer, length, flags, c, k)), step);
                    System.arraycopy(data, 0, model, (int)offset, length);
                }
                else if (kind < 8)
                {
                    buffer.fill((byte)0x5A);
                    assertEquals(length, call((c, k) -> device.read(offset, buffer, length, c, k)), step);
                    assertSameBytes(model, (int)offset, buffer, length, step);
                }
                else
                {
                    final int flags = random.nextBoolean() ? BlockDevice.FLAG_NO_HOLE : 0;
                    assertEquals(0, call((c, k) -> device.writeZeroes(offset, length, flags, c, k)), step);
                    java.util.Arrays.fill(model, (int)offset, (int)offset + length, (byte)0);
                }
            }
            assertEquals(0, call(device::flush), context);
        }
        assertArrayEquals(model, Files.readAllBytes(path), context + ": file content after close");
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void manyConcurrentSubmittersWithManyRequestsInFlight(final Backend backend) throws Exception
    {
        final int threads = 4;
        final int window = 8;
        final int chunk = 16 * 1024;
        final int chunks = 64;
        final Path path = newFile("concurrent.img", (long)threads * chunks * chunk);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            final AtomicReference<Throwable> failure = new AtomicReference<>();
            final List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++)
            {
                final int id = t;
                workers.add(Thread.ofPlatform().name("submitter-" + t).start(() ->
                {
                    try
                    {
                        final MemorySegment[] buffers = new MemorySegment[window];
                        for (int b = 0; b < window; b++)
                        {
                            buffers[b] = fixture.pool().buffer(fixture.pool().acquire());
                        }
                        final long base = (long)id * chunks * chunk;
                        final Completions writes = new Completions(chunks);
                        for (int i = 0; i < chunks; i++)
                        {
                            if (i >= window)
                            {
                                assertEquals(chunk, writes.await(i - window), "write " + (i - window));
                            }
                            final MemorySegment buffer = buffers[i % window];
                            fillPattern(buffer, chunk, id, i);
                            final long offset = base + (long)i * chunk;
                            final int index = i;
                            submit(() -> device.write(offset, buffer, chunk, 0, writes, index));
                        }
                        writes.awaitTotal(chunks);
                        final Completions reads = new Completions(chunks);
                        final byte[] expected = new byte[chunk];
                        for (int i = 0; i < chunks + window; i++)
                        {
                            if (i >= window)
                            {
                                final int done = i - window;
                                assertEquals(chunk, reads.await(done), "read " + done);
                                patternBytes(expected, id, done);
                                assertSameBytes(expected, 0, buffers[done % window], chunk, "thread " + id + " chunk " + done);
                            }
                            if (i < chunks)
                            {
                                final int index = i;
                                final MemorySegment buffer = buffers[i % window];
                                buffer.fill((byte)0);
                                submit(() -> device.read(base + (long)index * chunk, buffer, chunk, reads, index));
                            }
                        }
                        writes.assertExactlyOnce(chunks);
                        reads.assertExactlyOnce(chunks);
                    }
                    catch (final Throwable e)
                    {
                        failure.compareAndSet(null, e);
                    }
                }));
            }
            for (final Thread worker : workers)
            {
                worker.join();
            }
            if (failure.get() != null)
            {
                throw new AssertionError(backend + ": a submitter failed", failure.get());
            }
        }
        final byte[] content = Files.readAllBytes(path);
        final byte[] expected = new byte[chunk];
        for (int t = 0; t < threads; t++)
        {
            for (int i = 0; i < chunks; i++)
            {
                patternBytes(expected, t, i);
                final int offset = (t * chunks + i) * chunk;
                assertArrayEquals(expected, java.util.Arrays.copyOfRange(content, offset, offset + chunk),
                    backend + " thread " + t + " chunk " + i);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void backPressureWhenSlotsAreExhaustedThenRecovery(final Backend backend) throws Exception
    {
        Assumptions.assumeFalse(backend.isInline(), "inline execution completes before submit returns");
        final int depth = 4;
        final Path path = newFile("pressure.img", MIB);
        try (Backend.Fixture fixture = backend.start();
            BlockDevice device = fixture.engine().open(path, backend.options().withQueueDepth(depth)))
        {
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            final CountDownLatch gate = new CountDownLatch(1);
            final Completions completions = new Completions(64);
            // Completions hold the device threads until the gate opens, so accepted requests stay in flight.
            final IoCompletion held = (cookie, result) ->
            {
                awaitUninterruptibly(gate);
                completions.onComplete(cookie, result);
            };
            int accepted = 0;
            try
            {
                while (accepted < 64 && device.read(0, buffer, 4096, held, accepted))
                {
                    accepted++;
                }
                // A request whose completion callback is running has given its slot back (so that the handler
                // can resubmit at once), so up to one more per device thread may be accepted.
                final int deviceThreads = backend.isUring() ? 1 : 2;
                assertTrue(accepted >= depth && accepted <= depth + deviceThreads,
                    backend + ": requests accepted before back-pressure: " + accepted);
            }
            finally
            {
                gate.countDown();
            }
            completions.awaitTotal(accepted);
            for (int i = 0; i < accepted; i++)
            {
                assertEquals(4096, completions.await(i));
            }
            completions.assertExactlyOnce(accepted);
            assertEquals(0, completions.count(accepted), "the refused request must never complete");
            // Recovery: the device accepts and executes requests again.
            fillPattern(buffer, 4096, 7, 7);
            assertEquals(4096, call((c, k) -> device.write(8192, buffer, 4096, 0, c, k)));
            buffer.fill((byte)0);
            assertEquals(4096, call((c, k) -> device.read(8192, buffer, 4096, c, k)));
            final byte[] expected = new byte[4096];
            patternBytes(expected, 7, 7);
            assertSameBytes(expected, 0, buffer, 4096, backend.toString());
        }
    }

    /**
     * Completions that resubmit at once keep 32 requests in flight on a device of depth 64: back-pressure
     * must never appear. (A free list built on a bounded array queue failed this: a releaser preempted in the
     * middle of its offer made the queue look empty to every submitter.)
     */
    @ParameterizedTest
    @EnumSource(Backend.class)
    void noBackPressureBelowTheQueueDepthWhenCompletionsResubmit(final Backend backend) throws Exception
    {
        Assumptions.assumeFalse(backend.isInline(), "inline resubmission from a completion would recurse");
        final int depth = 32;
        final int total = backend.direct ? 4_000 : 60_000;
        final Path path = newFile("resubmit.img", 8 * MIB);
        try (Backend.Fixture fixture = backend.start();
            BlockDevice device = fixture.engine().open(path, backend.options().withQueueDepth(2 * depth)))
        {
            final java.util.concurrent.atomic.AtomicInteger issued = new java.util.concurrent.atomic.AtomicInteger(depth);
            final java.util.concurrent.atomic.AtomicInteger completed = new java.util.concurrent.atomic.AtomicInteger();
            final java.util.concurrent.atomic.AtomicInteger refused = new java.util.concurrent.atomic.AtomicInteger();
            final java.util.concurrent.atomic.AtomicInteger failed = new java.util.concurrent.atomic.AtomicInteger();
            final MemorySegment[] buffers = new MemorySegment[depth];
            for (int i = 0; i < depth; i++)
            {
                buffers[i] = fixture.pool().buffer(fixture.pool().acquire());
            }
            final IoCompletion[] resubmit = new IoCompletion[1];
            resubmit[0] = (cookie, result) ->
            {
                if (result != 4096)
                {
                    failed.incrementAndGet();
                }
                final int n = issued.getAndIncrement();
                if (n < total && !device.read((n % 2048) * 4096L, buffers[(int)cookie], 4096, resubmit[0], cookie))
                {
                    refused.incrementAndGet();
                    completed.addAndGet(total - n); // nothing more will come from this chain
                }
                completed.incrementAndGet();
            };
            for (int i = 0; i < depth; i++)
            {
                assertTrue(device.read(i * 4096L, buffers[i], 4096, resubmit[0], i));
            }
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            while (completed.get() < total && refused.get() == 0 && System.nanoTime() < deadline)
            {
                LockSupport.parkNanos(1_000_000);
            }
            assertEquals(0, refused.get(), backend + ": back-pressure below the queue depth");
            assertEquals(0, failed.get(), backend + ": failed reads");
            assertEquals(total, completed.get(), backend + ": completed");
        }
    }

    // ------------------------------------------------------------------------------------------ durability

    @ParameterizedTest
    @EnumSource(Backend.class)
    void fuaWritesAndFlushSucceedAndAreVisibleToOtherReaders(final Backend backend) throws Exception
    {
        final Path path = newFile("durable.img", MIB);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            fillPattern(buffer, 65536, 1, 2);
            assertEquals(65536, call((c, k) -> device.write(4096, buffer, 65536, BlockDevice.FLAG_FUA, c, k)));
            fillPattern(buffer, 8192, 3, 4);
            assertEquals(8192, call((c, k) -> device.write(131072, buffer, 8192, 0, c, k)));
            assertEquals(0, call(device::flush));
            assertEquals(0, call((c, k) -> device.writeZeroes(8192, 4096, BlockDevice.FLAG_FUA, c, k)));

            final byte[] expected = new byte[65536];
            patternBytes(expected, 1, 2);
            java.util.Arrays.fill(expected, 4096, 8192, (byte)0);
            assertArrayEquals(expected, readWithChannel(path, 4096, 65536), backend + ": FUA write then zeroes");
            final byte[] second = new byte[8192];
            patternBytes(second, 3, 4);
            assertArrayEquals(second, readWithChannel(path, 131072, 8192), backend + ": flushed write");
        }
    }

    // ------------------------------------------------------------------------------------------ allocation

    @ParameterizedTest
    @EnumSource(Backend.class)
    void discardPunchesAHoleThatReadsAsZeroes(final Backend backend) throws Exception
    {
        final Path path = newFile("discard.img", 4 * MIB);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            assertTrue(device.canDiscard());
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            fillPattern(buffer, 262144, 5, 5);
            assertEquals(262144, call((c, k) -> device.write(MIB, buffer, 262144, 0, c, k)));
            assertEquals(0, call(device::flush));
            assertEquals(0, call((c, k) -> device.discard(MIB + 65536, 131072, c, k)));
            assertEquals(0, call((c, k) -> device.discard(0, 0, c, k)), "empty discard");

            final byte[] expected = new byte[262144];
            patternBytes(expected, 5, 5);
            java.util.Arrays.fill(expected, 65536, 65536 + 131072, (byte)0);
            buffer.fill((byte)0x77);
            assertEquals(262144, call((c, k) -> device.read(MIB, buffer, 262144, c, k)));
            assertSameBytes(expected, 0, buffer, 262144, backend + ": after discard");
            assertEquals(List.of(
                new Extent(65536, 0), new Extent(131072, ExtentSink.HOLE | ExtentSink.ZERO), new Extent(65536, 0)),
                extents(device, MIB, 262144), backend + ": block status after discard");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void writeZeroesPunchesOrKeepsAllocationAsAsked(final Backend backend) throws Exception
    {
        final Path path = newFile("zeroes.img", 4 * MIB);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            assertTrue(device.canFastZero());
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            fillPattern(buffer, 262144, 6, 6);
            assertEquals(262144, call((c, k) -> device.write(0, buffer, 262144, 0, c, k)));
            assertEquals(262144, call((c, k) -> device.write(MIB, buffer, 262144, 0, c, k)));
            assertEquals(0, call(device::flush));
            final long allocated = allocatedBytes(path);
            assertEquals(2 * 262144, allocated, backend + ": allocation before zeroing");

            // Plain: the range may become a hole (ext4 punches it) and reads as zeroes.
            assertEquals(0, call((c, k) -> device.writeZeroes(0, 262144, 0, c, k)));
            // NO_HOLE: reads as zeroes and stays allocated (ZERO_RANGE leaves unwritten extents).
            assertEquals(0, call((c, k) -> device.writeZeroes(MIB, 262144, BlockDevice.FLAG_NO_HOLE, c, k)));
            assertEquals(0, call(device::flush));
            assertEquals(262144, allocatedBytes(path), backend + ": only the NO_HOLE range is still allocated");
            for (final long offset : new long[] {0, MIB})
            {
                buffer.fill((byte)0x33);
                assertEquals(262144, call((c, k) -> device.read(offset, buffer, 262144, c, k)));
                assertSameBytes(new byte[262144], 0, buffer, 262144, backend + ": zeroes at " + offset);
            }
            // The punched range is a hole. (The NO_HOLE range is allocated but unwritten: SEEK_DATA calls it a
            // hole or data depending on page cache state, so st_blocks above is the real check.)
            assertEquals(List.of(new Extent(262144, ExtentSink.HOLE | ExtentSink.ZERO)),
                extents(device, 0, 262144), backend + ": block status after plain zeroing");

            // FAST_ZERO succeeds where a hole punch or zero range does the job.
            fillPattern(buffer, 65536, 8, 8);
            assertEquals(65536, call((c, k) -> device.write(2 * MIB, buffer, 65536, 0, c, k)));
            assertEquals(0, call((c, k) -> device.writeZeroes(2 * MIB, 65536, BlockDevice.FLAG_FAST_ZERO, c, k)));
            assertEquals(0, call((c, k) -> device.writeZeroes(2 * MIB, 65536,
                BlockDevice.FLAG_FAST_ZERO | BlockDevice.FLAG_NO_HOLE, c, k)));
            assertEquals(65536, call((c, k) -> device.read(2 * MIB, buffer, 65536, c, k)));
            assertSameBytes(new byte[65536], 0, buffer, 65536, backend + ": fast zeroes");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void fastZeroFailsWithEnotsupWhereOnlyWritingZeroesWouldWork(final Backend backend) throws Exception
    {
        // tmpfs punches holes but has no ZERO_RANGE: NO_HOLE zeroes must be written out, so FAST_ZERO refuses.
        final Path shm = Files.createTempDirectory(Path.of("/dev/shm"), "understudy-zero");
        final Path path = shm.resolve("zeroes.img");
        try
        {
            createSparse(path, MIB);
            try (Backend.Fixture fixture = backend.start();
                BlockDevice device = fixture.engine().open(path, backend.options()))
            {
                final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
                fillPattern(buffer, 65536, 9, 9);
                assertEquals(65536, call((c, k) -> device.write(65536, buffer, 65536, 0, c, k)));
                assertEquals(-Errno.ENOTSUP, call((c, k) -> device.writeZeroes(65536, 65536,
                    BlockDevice.FLAG_NO_HOLE | BlockDevice.FLAG_FAST_ZERO, c, k)), backend + ": FAST_ZERO on tmpfs");
                final byte[] expected = new byte[65536];
                patternBytes(expected, 9, 9);
                assertArrayEquals(expected, readWithChannel(path, 65536, 65536), "FAST_ZERO refusal left the data");

                assertEquals(0, call((c, k) -> device.writeZeroes(65536, 65536, BlockDevice.FLAG_NO_HOLE, c, k)));
                assertArrayEquals(new byte[65536], readWithChannel(path, 65536, 65536), "written zeroes");
                assertEquals(List.of(new Extent(65536, 0)), extents(device, 65536, 65536),
                    backend + ": written zeroes stay allocated");
                assertEquals(65536, allocatedBytes(path), backend + ": tmpfs pages kept");
            }
        }
        finally
        {
            Files.deleteIfExists(path);
            Files.deleteIfExists(shm);
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void blockStatusDescribesHolesAndDataOfASparseFile(final Backend backend) throws Exception
    {
        final Path path = newFile("sparse.img", 4 * MIB);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            fillPattern(buffer, 65536, 1, 1);
            assertEquals(65536, call((c, k) -> device.write(MIB, buffer, 65536, 0, c, k)));
            assertEquals(65536, call((c, k) -> device.write(3 * MIB, buffer, 65536, 0, c, k)));
            final int hole = ExtentSink.HOLE | ExtentSink.ZERO;
            assertEquals(List.of(
                new Extent(MIB, hole), new Extent(65536, 0), new Extent(2 * MIB - 65536, hole),
                new Extent(65536, 0), new Extent(MIB - 65536, hole)),
                extents(device, 0, 4 * MIB), backend.toString());
            assertEquals(List.of(new Extent(4096, 0), new Extent(MIB, hole)),
                extents(device, MIB + 65536 - 4096, MIB + 4096), backend + ": a window starting in data");
            final List<Extent> first = new ArrayList<>();
            assertEquals(MIB, device.blockStatus(0, 4 * MIB, (length, flags) ->
            {
                first.add(new Extent(length, flags));
                return false;
            }), "a sink may stop the walk");
            assertEquals(List.of(new Extent(MIB, hole)), first);
            assertEquals(-Errno.EINVAL, device.blockStatus(4 * MIB - 4096, 8192, (l, f) -> true), "past the end");
        }
    }

    // ------------------------------------------------------------------------------------------ errors

    @ParameterizedTest
    @EnumSource(Backend.class)
    void requestsOutOfRangeFailWithoutTouchingData(final Backend backend) throws Exception
    {
        final int size = MIB;
        final Path path = newFile("range.img", size);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, backend.options()))
        {
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            fillPattern(buffer, 4096, 2, 2);
            assertEquals(4096, call((c, k) -> device.write(size - 4096, buffer, 4096, 0, c, k)));

            assertEquals(-Errno.EINVAL, call((c, k) -> device.read(size - 4096, buffer, 8192, c, k)), "read past end");
            assertEquals(-Errno.EINVAL, call((c, k) -> device.read(size, buffer, 4096, c, k)), "read at end");
            assertEquals(-Errno.EINVAL, call((c, k) -> device.read(-4096, buffer, 4096, c, k)), "negative offset");
            assertEquals(-Errno.EINVAL, call((c, k) -> device.discard(size - 4096, 8192, c, k)), "discard past end");
            fillPattern(buffer, 8192, 3, 3);
            assertEquals(-Errno.ENOSPC, call((c, k) -> device.write(size - 4096, buffer, 8192, 0, c, k)),
                "write past end");
            assertEquals(-Errno.ENOSPC, call((c, k) -> device.writeZeroes(size - 4096, 8192, 0, c, k)),
                "zeroes past end");
            assertEquals(size, Files.size(path), "the file did not grow");
            final byte[] expected = new byte[4096];
            patternBytes(expected, 2, 2);
            assertArrayEquals(expected, readWithChannel(path, size - 4096, 4096), "nothing of the write was applied");
            if (device.alignment() > 1)
            {
                assertEquals(-Errno.EINVAL, call((c, k) -> device.read(512, buffer, 4096, c, k)), "misaligned offset");
                assertEquals(-Errno.EINVAL, call((c, k) -> device.write(0, buffer, 1000, 0, c, k)), "misaligned length");
            }
            assertEquals(-Errno.EINVAL, call((c, k) -> device.read(0, buffer, Backend.BUFFER_SIZE + 4096, c, k)),
                "buffer smaller than the request");
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void readOnlyDeviceRefusesEveryWriteWithEperm(final Backend backend) throws Exception
    {
        final Path path = newFile("ro.img", MIB);
        Files.write(path, "hello".getBytes(StandardCharsets.US_ASCII), StandardOpenOption.WRITE);
        final FileOptions options = new FileOptions(true, backend.direct, FileOptions.DEFAULT_QUEUE_DEPTH);
        try (Backend.Fixture fixture = backend.start(); BlockDevice device = fixture.engine().open(path, options))
        {
            assertTrue(device.isReadOnly());
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            assertEquals(-Errno.EPERM, call((c, k) -> device.write(0, buffer, 4096, 0, c, k)));
            assertEquals(-Errno.EPERM, call((c, k) -> device.discard(0, 4096, c, k)));
            assertEquals(-Errno.EPERM, call((c, k) -> device.writeZeroes(0, 4096, 0, c, k)));
            assertEquals(4096, call((c, k) -> device.read(0, buffer, 4096, c, k)));
            assertEquals("hello", new String(buffer.asSlice(0, 5).toArray(JAVA_BYTE), StandardCharsets.US_ASCII));
            assertEquals(0, call(device::flush));
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void enospcFromAReallyFullFileSystem(final Backend backend) throws Exception
    {
        final Path mountPoint = Files.createDirectory(dir.resolve("small"));
        mount(mountPoint, "tmpfs", "size=1m", "tmpfs");
        try
        {
            final Path path = mountPoint.resolve("full.img");
            createSparse(path, 8 * MIB);
            try (Backend.Fixture fixture = backend.start();
                BlockDevice device = fixture.engine().open(path, backend.options()))
            {
                final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
                fillPattern(buffer, 262144, 4, 4);
                int written = 0;
                int result = 0;
                for (long offset = 0; offset < 8 * MIB; offset += 262144)
                {
                    final long at = offset;
                    result = call((c, k) -> device.write(at, buffer, 262144, 0, c, k));
                    if (result < 0)
                    {
                        break;
                    }
                    assertEquals(262144, result);
                    written++;
                }
                assertEquals(-Errno.ENOSPC, result, backend + ": a full file system");
                assertTrue(written >= 2 && written <= 4, "chunks written before the 1 MiB file system filled: " + written);
                assertEquals(-Errno.ENOSPC, call((c, k) -> device.writeZeroes(6 * MIB, MIB, BlockDevice.FLAG_NO_HOLE,
                    c, k)), backend + ": zeroes that must be written out");
            }
        }
        finally
        {
            run("umount", mountPoint.toString());
        }
    }

    /**
     * A real EIO from the kernel: an ext4 image mounted through a loop device, shut down with
     * EXT4_IOC_SHUTDOWN (what xfs_io's "shutdown" does) while the file is open; ext4 then fails every read,
     * write and fsync with EIO. (Device-mapper's "error" target is not available on this kernel.)
     */
    @ParameterizedTest
    @EnumSource(Backend.class)
    void eioFromTheKernelIsSurfacedAsEio(final Backend backend) throws Throwable
    {
        final Path image = dir.resolve("eio.ext4");
        createSparse(image, 16 * MIB);
        final int mkfs = run("mkfs.ext4", "-q", "-F", image.toString());
        Assumptions.assumeTrue(mkfs == 0, "mkfs.ext4 unavailable");
        final Path mountPoint = Files.createDirectory(dir.resolve("eio"));
        mount(mountPoint, image.toString(), "loop", "ext4");
        try
        {
            final Path path = mountPoint.resolve("disk.img");
            createSparse(path, MIB);
            try (Backend.Fixture fixture = backend.start();
                BlockDevice device = fixture.engine().open(path, backend.options()))
            {
                final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
                fillPattern(buffer, 65536, 5, 5);
                assertEquals(65536, call((c, k) -> device.write(0, buffer, 65536, 0, c, k)));
                shutDownExt4(mountPoint);
                assertEquals(-Errno.EIO, call((c, k) -> device.read(0, buffer, 65536, c, k)), backend + ": read");
                assertEquals(-Errno.EIO, call((c, k) -> device.write(0, buffer, 65536, 0, c, k)), backend + ": write");
                assertEquals(-Errno.EIO, call(device::flush), backend + ": flush");
            }
        }
        finally
        {
            run("umount", mountPoint.toString());
        }
    }

    // ------------------------------------------------------------------------------------------ shutdown

    @ParameterizedTest
    @EnumSource(Backend.class)
    void closingADeviceCompletesEveryRequestInFlightExactlyOnce(final Backend backend) throws Exception
    {
        final int requests = 96;
        final Path path = newFile("close.img", 8 * MIB);
        try (Backend.Fixture fixture = backend.start())
        {
            final BlockDevice device = fixture.engine().open(path, backend.options());
            final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
            final Completions completions = new Completions(requests + 1);
            for (int i = 0; i < requests; i++)
            {
                final int index = i;
                submit(() -> device.read((long)(index % 32) * 65536, buffer, 65536, completions, index));
            }
            device.close();
            // close() returns only once everything it accepted has completed: no waiting here.
            assertEquals(requests, completions.total(), backend + ": completed when close returned");
            for (int i = 0; i < requests; i++)
            {
                final int result = completions.await(i);
                assertTrue(result == 65536 || result == -Errno.ESHUTDOWN, "cookie " + i + ": " + Errno.name(result));
            }
            assertTrue(device.read(0, buffer, 4096, completions, requests), "refusal is a completion");
            assertEquals(-Errno.ESHUTDOWN, completions.await(requests), "submitted after close");
            completions.assertExactlyOnce(requests + 1);
            device.close(); // idempotent
        }
    }

    @ParameterizedTest
    @EnumSource(Backend.class)
    void closingTheEngineCompletesEveryRequestInFlightExactlyOnce(final Backend backend) throws Exception
    {
        final int requests = 96;
        final Path path = newFile("engine-close.img", 8 * MIB);
        final Backend.Fixture fixture = backend.start();
        final BlockDevice device = fixture.engine().open(path, backend.options());
        final MemorySegment buffer = fixture.pool().buffer(fixture.pool().acquire());
        final Completions completions = new Completions(requests);
        for (int i = 0; i < requests; i++)
        {
            final int index = i;
            submit(() -> device.write((long)(index % 32) * 65536, buffer, 65536, 0, completions, index));
        }
        fixture.engine().close();
        assertEquals(requests, completions.total(), backend + ": completed when the engine's close returned");
        for (int i = 0; i < requests; i++)
        {
            final int result = completions.await(i);
            assertTrue(result == 65536 || result == -Errno.ESHUTDOWN, "cookie " + i + ": " + Errno.name(result));
        }
        // A request submitted after the engine closed completes at once (inline execution still works).
        final Completions late = new Completions(1);
        assertTrue(device.read(0, buffer, 65536, late, 0));
        assertEquals(backend.isInline() ? 65536 : -Errno.ESHUTDOWN, late.await(0), backend + ": after engine close");
        device.close();
        fixture.close();
        completions.assertExactlyOnce(requests);
        late.assertExactlyOnce(1);
    }

    // ------------------------------------------------------------------------------------------ helpers

    record Extent(long length, int flags)
    {
    }

    @FunctionalInterface
    interface Submission
    {
        boolean submit(IoCompletion completion, long cookie);
    }

    /** Submits one request (retrying on back-pressure) and waits for its result. */
    private static int call(final Submission submission)
    {
        final Completions completions = new Completions(1);
        submit(() -> submission.submit(completions, 0));
        final int result = completions.await(0);
        completions.assertExactlyOnce(1);
        return result;
    }

    private static void submit(final java.util.function.BooleanSupplier submission)
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!submission.getAsBoolean())
        {
            if (System.nanoTime() > deadline)
            {
                fail("back-pressure never cleared");
            }
            LockSupport.parkNanos(50_000);
        }
    }

    private static List<Extent> extents(final BlockDevice device, final long offset, final long length)
    {
        final List<Extent> extents = new ArrayList<>();
        final long described = device.blockStatus(offset, length, (extentLength, flags) ->
        {
            extents.add(new Extent(extentLength, flags));
            return true;
        });
        assertEquals(length, described, "bytes described");
        return extents;
    }

    private Path newFile(final String name, final long size) throws IOException
    {
        final Path path = dir.resolve(name);
        createSparse(path, size);
        return path;
    }

    private static void createSparse(final Path path, final long size) throws IOException
    {
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.setLength(size);
        }
    }

    private static byte[] readWithChannel(final Path path, final long offset, final int length) throws IOException
    {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ))
        {
            final ByteBuffer bytes = ByteBuffer.allocate(length);
            while (bytes.hasRemaining() && channel.read(bytes, offset + bytes.position()) > 0)
            {
                // keep reading
            }
            return bytes.array();
        }
    }

    /** st_blocks * 512, through stat(1): the space the file really holds. */
    private static long allocatedBytes(final Path path) throws IOException, InterruptedException
    {
        final Process process = new ProcessBuilder("stat", "-c", "%b", path.toString()).redirectErrorStream(true).start();
        final String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).trim();
        assertEquals(0, process.waitFor(), out);
        return Long.parseLong(out) * 512;
    }

    private static void fillPattern(final MemorySegment buffer, final int length, final int a, final int b)
    {
        final byte[] bytes = new byte[length];
        patternBytes(bytes, a, b);
        MemorySegment.copy(bytes, 0, buffer, JAVA_BYTE, 0, length);
    }

    /** A pattern that differs per (a, b) and per position, so misplaced or stale blocks are caught. */
    private static void patternBytes(final byte[] bytes, final int a, final int b)
    {
        for (int i = 0; i < bytes.length; i++)
        {
            bytes[i] = (byte)(i * 31 + a * 131 + b * 7 + (i >>> 12));
        }
    }

    private static void assertSameBytes(
        final byte[] expected, final int offset, final MemorySegment actual, final int length, final String message)
    {
        final long mismatch = MemorySegment.ofArray(expected).asSlice(offset, length).mismatch(actual.asSlice(0, length));
        if (mismatch >= 0)
        {
            fail(message + ": first differing byte at +" + mismatch + ": expected " +
                expected[offset + (int)mismatch] + ", got " + actual.get(JAVA_BYTE, mismatch));
        }
    }

    private static int alignDown(final long value, final int alignment, final int minimum)
    {
        return (int)Math.max(minimum, value - value % alignment);
    }

    private static void awaitUninterruptibly(final CountDownLatch latch)
    {
        try
        {
            latch.await();
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    private static void mount(final Path mountPoint, final String source, final String options, final String type)
        throws IOException, InterruptedException
    {
        final int rc = run("mount", "-t", type, "-o", options, source, mountPoint.toString());
        Assumptions.assumeTrue(rc == 0, "mount -t " + type + " not permitted here (needs root)");
    }

    private static int run(final String... command) throws IOException, InterruptedException
    {
        final Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        final String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        final int rc = process.waitFor();
        if (rc != 0)
        {
            System.err.println(String.join(" ", command) + " -> " + rc + ": " + output.trim());
        }
        return rc;
    }

    /** EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32) with EXT4_GOING_FLAGS_NOLOGFLUSH. */
    private static void shutDownExt4(final Path mountPoint) throws Throwable
    {
        final Linker linker = Linker.nativeLinker();
        final MethodHandle ioctl = linker.downcallHandle(linker.defaultLookup().find("ioctl").orElseThrow(),
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
        try (Arena arena = Arena.ofConfined())
        {
            final LibC.ErrnoState errno = new LibC.ErrnoState(arena);
            final int fd = LibC.open(errno, arena.allocateFrom(mountPoint.toString()), LibC.O_RDONLY, 0);
            assertTrue(fd >= 0, "open " + mountPoint + ": " + Errno.name(fd));
            final MemorySegment flags = arena.allocate(JAVA_INT);
            flags.set(JAVA_INT, 0, 2);
            final int rc = (int)ioctl.invokeExact(fd, 0x8004587DL, flags);
            LibC.close(errno, fd);
            assertEquals(0, rc, "EXT4_IOC_SHUTDOWN");
        }
    }
}
