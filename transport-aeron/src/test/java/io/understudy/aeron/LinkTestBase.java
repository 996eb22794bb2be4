package io.understudy.aeron;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * What the Aeron link tests share: a secondary writing into a real file through the thread-pool backend, a primary
 * linked to it over a real embedded media driver, and a random workload checked byte for byte against a model.
 */
abstract class LinkTestBase
{
    static final int DISK = 8 << 20;
    static final int STRIPES = 16;
    static final int STRIPE = DISK / STRIPES;

    @TempDir
    Path dir;

    final List<AutoCloseable> resources = new ArrayList<>();
    final Arena arena = Arena.ofShared();

    @AfterEach
    void tearDown() throws Exception
    {
        for (int i = resources.size() - 1; i >= 0; i--)
        {
            resources.get(i).close();
        }
        arena.close();
        final String prefix = "understudy-aeron-" + ProcessHandle.current().pid() + "-";
        try (var left = Files.list(Path.of("/dev/shm")))
        {
            assertEquals(List.of(), left.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(prefix))
                .toList(), "media driver directories left behind");
        }
    }

    <T extends AutoCloseable> T own(final T resource)
    {
        resources.add(resource);
        return resource;
    }

    /** A secondary writing into a file of DISK bytes, and its media (shared with the primary over IPC). */
    final class Pair
    {
        final AeronMedia secondaryMedia;
        final AeronMedia primaryMedia;
        final Path file;
        final LinkFixture.Acceptor acceptor = new LinkFixture.Acceptor(DISK, 5);
        final AeronSecondaryEndpoint endpoint;
        final AeronChannel channel;

        Pair(final boolean udp, final AeronLinkContext context) throws Exception
        {
            this(udp, context, own(AeronMedia.embedded()), null);
        }

        Pair(final boolean udp, final AeronLinkContext context, final AeronMedia secondaryMedia,
            final AeronMedia primaryMedia) throws Exception
        {
            this(udp, context, secondaryMedia, primaryMedia, "");
        }

        /** @param extraParams appended to the channel URI, e.g. {@code term-length=65536}. */
        Pair(final boolean udp, final AeronLinkContext context, final AeronMedia secondaryMedia,
            final AeronMedia primaryMedia, final String extraParams) throws Exception
        {
            this(udp, context, secondaryMedia, primaryMedia, extraParams, UnaryOperator.identity());
        }

        /** @param sinkWrapper wraps the secondary's file device, e.g. to make it refuse requests. */
        Pair(final boolean udp, final AeronLinkContext context, final AeronMedia secondaryMedia,
            final AeronMedia primaryMedia, final String extraParams, final UnaryOperator<BlockDevice> sinkWrapper)
            throws Exception
        {
            this.secondaryMedia = secondaryMedia;
            this.primaryMedia = primaryMedia != null ? primaryMedia : udp ? own(AeronMedia.embedded()) :
                secondaryMedia;
            this.file = dir.resolve("secondary-" + System.nanoTime() + ".img");
            try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
            {
                raf.setLength(DISK);
            }
            final ThreadPoolIoEngine engine = own(new ThreadPoolIoEngine(2));
            final BlockDevice sink = sinkWrapper.apply(own(engine.open(file, FileOptions.readWrite())));
            this.channel = LinkFixture.channel(udp, extraParams);
            this.endpoint = own(AeronSecondaryEndpoint.listen(secondaryMedia, channel, sink, acceptor,
                () -> acceptor.epoch, context));
        }

        AeronPrimaryLink connect(final LinkFixture.Events events, final AeronLinkContext context) throws Exception
        {
            return own(AeronPrimaryLink.connect(primaryMedia, channel, LinkFixture.hello(DISK, 5), context, () -> 5,
                events));
        }
    }

    @FunctionalInterface
    interface Submit
    {
        boolean submit(int slot);
    }

    /** Submits (retrying on back-pressure) and returns; results land in {@code results[slot]}. */
    static void submit(final Submit submit, final int slot)
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!submit.submit(slot))
        {
            if (System.nanoTime() > deadline)
            {
                fail("back-pressure did not clear in 30 s");
            }
            Thread.onSpinWait();
        }
    }

    static void awaitAll(final AtomicIntegerArray results, final int count)
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        for (int i = 0; i < count; i++)
        {
            while (results.get(i) == Integer.MIN_VALUE)
            {
                if (System.nanoTime() > deadline)
                {
                    fail("request " + i + " never completed");
                }
                Thread.onSpinWait();
            }
        }
    }

    /**
     * Random writes (up to 600 KiB, so some travel in parts), write-zeroes, discards and flushes, up to STRIPES in
     * flight on disjoint stripes, then the file is compared byte for byte with the model.
     */
    void runContract(final Pair pair, final AeronPrimaryLink link, final int rounds, final long seed)
        throws Exception
    {
        final BlockDevice device = link.forwarding();
        assertEquals(DISK, device.size());
        final byte[] model = new byte[DISK];
        final Random random = new Random(seed);
        final MemorySegment[] buffers = new MemorySegment[STRIPES];
        for (int i = 0; i < STRIPES; i++)
        {
            buffers[i] = arena.allocate(STRIPE, 4096);
        }
        final AtomicIntegerArray results = new AtomicIntegerArray(STRIPES);
        for (int round = 0; round < rounds; round++)
        {
            final int[] expected = new int[STRIPES];
            for (int i = 0; i < STRIPES; i++)
            {
                results.set(i, Integer.MIN_VALUE);
            }
            for (int stripe = 0; stripe < STRIPES; stripe++)
            {
                final int length = 1 + random.nextInt(Math.min(STRIPE, 600 << 10));
                final long offset = (long)stripe * STRIPE + random.nextInt(STRIPE - length + 1);
                final int kind = random.nextInt(10);
                if (kind < 7)
                {
                    final byte[] data = new byte[length];
                    random.nextBytes(data);
                    MemorySegment.copy(data, 0, buffers[stripe], ValueLayout.JAVA_BYTE, 0, length);
                    System.arraycopy(data, 0, model, (int)offset, length);
                    expected[stripe] = length;
                    final MemorySegment buffer = buffers[stripe];
                    submit(s -> device.write(offset, buffer, length, 0, (c, r) -> results.set((int)c, r), s), stripe);
                }
                else if (kind < 8)
                {
                    java.util.Arrays.fill(model, (int)offset, (int)offset + length, (byte)0);
                    submit(s -> device.writeZeroes(offset, length, 0, (c, r) -> results.set((int)c, r), s), stripe);
                }
                else if (kind < 9)
                {
                    java.util.Arrays.fill(model, (int)offset, (int)offset + length, (byte)0);
                    submit(s -> device.discard(offset, length, (c, r) -> results.set((int)c, r), s), stripe);
                }
                else
                {
                    submit(s -> device.flush((c, r) -> results.set((int)c, r), s), stripe);
                }
            }
            awaitAll(results, STRIPES);
            for (int i = 0; i < STRIPES; i++)
            {
                assertEquals(expected[i], results.get(i), "round " + round + " stripe " + i);
            }
        }
        assertEquals(0, link.inFlight());
        assertEquals(0, link.unackedBytes());
        assertArrayEquals(model, Files.readAllBytes(pair.file));
    }
}
