package io.understudy.nbd.client;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.nbd.server.NbdServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static io.understudy.nbd.protocol.NbdProtocol.TFLAG_CAN_MULTI_CONN;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** The pipelined client as a BlockDevice, against our server and against nbdkit, checked against a byte model. */
@Timeout(60)
class NbdClientDeviceTest
{
    private static final int SIZE = 16 << 20;
    private static final int MAX_LENGTH = 256 << 10;

    @TempDir
    Path dir;

    @FunctionalInterface
    private interface Submit
    {
        boolean submit(IoCompletion completion);
    }

    /** Submits one operation (retrying on back-pressure) and waits for its result. */
    private static int await(final Submit submit) throws InterruptedException
    {
        final AtomicIntegerArray result = new AtomicIntegerArray(1);
        result.set(0, Integer.MIN_VALUE);
        while (!submit.submit((cookie, value) -> result.set(0, value)))
        {
            Thread.sleep(1);
        }
        waitAll(result, 1);
        return result.get(0);
    }

    private static void waitAll(final AtomicIntegerArray results, final int count) throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        for (int i = 0; i < count; i++)
        {
            while (results.get(i) == Integer.MIN_VALUE)
            {
                if (System.nanoTime() > deadline)
                {
                    fail("request " + i + " never completed");
                }
                Thread.sleep(1);
            }
        }
    }

    /** Pipelined writes then reads of random lengths on disjoint ranges, checked against a model; then edge cases. */
    private static void exercise(final BlockDevice device, final long seed) throws InterruptedException
    {
        final Random random = new Random(seed);
        final byte[] model = new byte[SIZE];
        final int count = SIZE / MAX_LENGTH;
        final List<Integer> order = new ArrayList<>();
        for (int i = 0; i < count; i++)
        {
            order.add(i);
        }
        Collections.shuffle(order, random);
        try (Arena arena = Arena.ofShared())
        {
            final MemorySegment[] buffers = new MemorySegment[count];
            final long[] offsets = new long[count];
            final int[] lengths = new int[count];
            final AtomicIntegerArray results = new AtomicIntegerArray(count);
            for (int i = 0; i < count; i++)
            {
                final int length = 1 + random.nextInt(MAX_LENGTH);
                lengths[i] = length;
                offsets[i] = (long)order.get(i) * MAX_LENGTH;
                final byte[] data = new byte[length];
                random.nextBytes(data);
                buffers[i] = arena.allocate(MAX_LENGTH, 4096);
                MemorySegment.copy(data, 0, buffers[i], ValueLayout.JAVA_BYTE, 0, length);
                System.arraycopy(data, 0, model, (int)offsets[i], length);
                results.set(i, Integer.MIN_VALUE);
                final int flags = i % 5 == 0 ? BlockDevice.FLAG_FUA : 0;
                while (!device.write(offsets[i], buffers[i], length, flags, (cookie, result) ->
                    results.set((int)cookie, result), i))
                {
                    Thread.sleep(1);
                }
            }
            waitAll(results, count);
            for (int i = 0; i < count; i++)
            {
                assertEquals(lengths[i], results.get(i), "write " + i);
                results.set(i, Integer.MIN_VALUE);
            }
            assertEquals(0, await(c -> device.flush(c, 0)));
            for (int i = 0; i < count; i++)
            {
                buffers[i].fill((byte)0x5A);
                while (!device.read(offsets[i], buffers[i], MAX_LENGTH, (cookie, result) ->
                    results.set((int)cookie, result), i))
                {
                    Thread.sleep(1);
                }
            }
            waitAll(results, count);
            for (int i = 0; i < count; i++)
            {
                assertEquals(MAX_LENGTH, results.get(i), "read " + i);
                assertArrayEquals(Arrays.copyOfRange(model, (int)offsets[i], (int)offsets[i] + MAX_LENGTH),
                    buffers[i].toArray(ValueLayout.JAVA_BYTE), "read " + i);
            }
            final MemorySegment one = buffers[0];
            assertEquals(0, await(c -> device.writeZeroes(0, 65536, 0, c, 0)));
            assertEquals(65536, await(c -> device.read(0, one, 65536, c, 0)));
            assertArrayEquals(new byte[65536], one.asSlice(0, 65536).toArray(ValueLayout.JAVA_BYTE));
            assertEquals(-Errno.EINVAL, await(c -> device.read(SIZE, one, 512, c, 0)));
            assertEquals(-Errno.ENOSPC, await(c -> device.write(SIZE - 512, one, 1024, 0, c, 0)));
            assertEquals(-Errno.EINVAL, await(c -> device.discard(-1, 512, c, 0)));
            assertEquals(0, await(c -> device.discard(65536, 65536, c, 0)));
        }
    }

    private Path sparseFile(final String name) throws IOException
    {
        final Path file = dir.resolve(name);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(SIZE);
        }
        return file;
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 2})
    void againstOurServer(final int workers) throws Exception
    {
        final Path file = sparseFile("d.img");
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(workers);
            BlockDevice served = engine.open(file, FileOptions.readWrite()))
        {
            final NbdServer server = new NbdServer(new NbdServer.Context().exportName("d").device(served));
            server.bindUnix(dir.resolve("s.sock"));
            server.start();
            try (NbdClientDevice client = NbdClientDevice.connect(UnixDomainSocketAddress.of(dir.resolve("s.sock")),
                "d"))
            {
                assertEquals(SIZE, client.size());
                assertEquals(TFLAG_CAN_MULTI_CONN, client.transmissionFlags() & TFLAG_CAN_MULTI_CONN);
                final List<long[]> extents = new ArrayList<>();
                final long described = client.blockStatus(SIZE - (1 << 20), 1 << 20, (length, flags) ->
                {
                    extents.add(new long[] {length, flags});
                    return true;
                });
                assertEquals(1 << 20, described);
                assertEquals(1, extents.size());
                assertEquals(ExtentSink.HOLE | ExtentSink.ZERO, extents.get(0)[1], "untouched file is a hole");
                exercise(client, workers);
            }
            server.close();
            assertEquals(0, server.counters().inFlight());
        }
    }

    @Test
    void againstNbdkitAndConnectionLoss() throws Exception
    {
        final Path socket = dir.resolve("k.sock");
        final Process nbdkit = new ProcessBuilder("nbdkit", "-f", "-U", socket.toString(), "memory", "size=" + SIZE)
            .redirectErrorStream(true).redirectOutput(dir.resolve("nbdkit.log").toFile()).start();
        try
        {
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!Files.exists(socket) && System.nanoTime() < deadline)
            {
                Thread.sleep(10);
            }
            final NbdClientDevice client = NbdClientDevice.connect(UnixDomainSocketAddress.of(socket), "");
            exercise(client, 7);
            nbdkit.destroyForcibly().waitFor();
            try (Arena arena = Arena.ofConfined())
            {
                final MemorySegment buffer = arena.allocate(4096);
                assertEquals(-Errno.EIO, await(c -> client.read(0, buffer, 4096, c, 0)), "server gone");
                assertEquals(-Errno.EIO, await(c -> client.write(0, buffer, 4096, 0, c, 0)), "and stays gone");
            }
            client.close();
        }
        finally
        {
            nbdkit.destroyForcibly().waitFor();
        }
    }
}
