package io.understudy.aeron;

import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ext.DebugReceiveChannelEndpoint;
import io.aeron.driver.ext.DebugSendChannelEndpoint;
import io.aeron.driver.ext.LossGenerator;
import io.aeron.driver.ext.RandomLossGenerator;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ForwardingBlockDevice;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.MemoryDevice;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.RefusalCode;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.file.Files;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The link under adverse conditions: a full window, lost frames, foreign versions and foreign sessions. */
@Timeout(180)
class AeronFaultTest extends LinkTestBase
{
    /**
     * A 64 KiB term (a 32 KiB window, 8 KiB messages) and two sink slots on the secondary: the primary is
     * back-pressured again and again, guest writes wait and the waits are counted, and nothing is lost.
     */
    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void backPressureWaitsAndLosesNothing(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext().sinkSlots(2);
        final AeronMedia secondaryMedia = own(AeronMedia.embedded());
        final Pair pair = new Pair(udp, context, secondaryMedia, udp ? own(AeronMedia.embedded()) : secondaryMedia,
            "term-length=65536");
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        runContract(pair, link, 20, 7);
        assertTrue(link.backPressureWaits() > 0, "the publication was never back-pressured");
        assertTrue(pair.endpoint.sinkBackPressure() > 0, "the secondary never held a request back");
        assertEquals(link.forwarded(), link.acked());
    }

    /**
     * A sink that refuses every other write: a refused request ABORTs the poll at its last fragment, which comes
     * again (parts longer than a frame are not reassembled from the start), and the request must then land once,
     * whole, with the link still up.
     */
    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void aSinkRefusingTheLastFragmentOfAPartLosesNothing(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia secondaryMedia = own(AeronMedia.embedded());
        final AtomicInteger writes = new AtomicInteger();
        final Pair pair = new Pair(udp, context, secondaryMedia, udp ? own(AeronMedia.embedded()) : secondaryMedia,
            "", sink -> new ForwardingBlockDevice(sink)
            {
                @Override
                public boolean write(
                    final long offset, final MemorySegment buffer, final int length, final int flags,
                    final IoCompletion completion, final long cookie)
                {
                    return writes.getAndIncrement() % 2 != 0 && super.write(offset, buffer, length, flags,
                        completion, cookie);
                }
            });
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        runContract(pair, link, 20, 11);
        assertTrue(pair.endpoint.sinkBackPressure() > 0, "the sink never refused");
        assertEquals(link.forwarded(), link.acked());
        assertEquals(PeerControl.State.UP, pair.endpoint.link().state());
    }

    /**
     * 10 % of the data frames dropped in each direction by Aeron's debug channel endpoints: NAKs and retransmits
     * make up for them (frames then arrive out of order and the receiver puts them back in order), and the
     * secondary's file is still byte-exact.
     */
    @Test
    void randomLossIsRepairedByteExact() throws Exception
    {
        final AtomicLong dropped = new AtomicLong();
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia secondaryMedia = own(AeronMedia.embedded(lossy(0.1, 1, dropped)));
        final AeronMedia primaryMedia = own(AeronMedia.embedded(lossy(0.1, 2, dropped)));
        final Pair pair = new Pair(true, context, secondaryMedia, primaryMedia);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        runContract(pair, link, 12, 11);
        assertTrue(dropped.get() > 100, "only " + dropped.get() + " frames dropped");
        assertEquals(link.forwarded(), link.acked());
    }

    /**
     * 20 % of the frames sent each way overtake the frame before them (a reordering send endpoint) and 2 % are
     * dropped besides: the receivers put them back in order, and the secondary's file is byte-exact.
     */
    @Test
    void reorderingIsRepairedByteExact() throws Exception
    {
        final AtomicLong reordered = new AtomicLong();
        final AtomicLong dropped = new AtomicLong();
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia secondaryMedia = own(AeronMedia.embedded(reordering(0.2, 3, reordered, dropped)));
        final AeronMedia primaryMedia = own(AeronMedia.embedded(reordering(0.2, 4, reordered, dropped)));
        final Pair pair = new Pair(true, context, secondaryMedia, primaryMedia);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        runContract(pair, link, 12, 13);
        assertTrue(reordered.get() > 100, "only " + reordered.get() + " frames reordered");
        assertEquals(link.forwarded(), link.acked());
    }

    private static Consumer<MediaDriver.Context> reordering(
        final double rate, final long seed, final AtomicLong reordered, final AtomicLong dropped)
    {
        return context -> context
            .sendChannelEndpointSupplier((channel, counter, ctx) -> new ReorderingSendChannelEndpoint(channel, counter,
                ctx, rate, seed, reordered))
            .receiveChannelEndpointSupplier((channel, dispatcher, counter, ctx) -> new DebugReceiveChannelEndpoint(
                channel, dispatcher, counter, ctx, counting(new RandomLossGenerator(0.02, seed + 100), dropped),
                new RandomLossGenerator(0)));
    }

    private static Consumer<MediaDriver.Context> lossy(final double rate, final long seed, final AtomicLong dropped)
    {
        return context -> context
            .sendChannelEndpointSupplier((channel, counter, ctx) -> new DebugSendChannelEndpoint(channel, counter, ctx,
                counting(new RandomLossGenerator(rate, seed), dropped), new RandomLossGenerator(0)))
            .receiveChannelEndpointSupplier((channel, dispatcher, counter, ctx) -> new DebugReceiveChannelEndpoint(
                channel, dispatcher, counter, ctx, counting(new RandomLossGenerator(rate, seed + 100), dropped),
                new RandomLossGenerator(0)));
    }

    private static LossGenerator counting(final LossGenerator generator, final AtomicLong dropped)
    {
        return (address, buffer, length) ->
        {
            final boolean drop = generator.shouldDropFrame(address, buffer, length);
            if (drop)
            {
                dropped.incrementAndGet();
            }
            return drop;
        };
    }

    /** A HELLO of wire version 2 is refused with the version reason, on the channel its frozen fields name. */
    @Test
    void foreignVersionIsRefusedByName() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(false, context);
        final var aeron = pair.primaryMedia.aeron();
        try (Subscription replies = aeron.addSubscription("aeron:ipc", WireProtocol.REPLY_STREAM_ID);
            ExclusivePublication control = aeron.addExclusivePublication("aeron:ipc",
                WireProtocol.CONTROL_STREAM_ID))
        {
            final UnsafeBuffer buffer = new UnsafeBuffer(new byte[256]);
            new MessageHeader().wrap(buffer, 0).encode(WireProtocol.HELLO, 2);
            final int length = MessageHeader.LENGTH + new HelloFlyweight().wrap(buffer, MessageHeader.LENGTH)
                .encode(LinkFixture.hello(DISK, 5), WireProtocol.REPLY_STREAM_ID, "aeron:ipc");
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            offer(control, buffer, length, deadline);
            final AtomicReference<String> refusal = new AtomicReference<>();
            final FragmentAssembler assembler = new FragmentAssembler((b, offset, l, header) ->
            {
                final MessageHeader h = new MessageHeader().wrap(b, offset);
                if (h.templateId() == WireProtocol.REFUSE)
                {
                    final ControlFlyweight body = new ControlFlyweight().wrap(b, h.blockOffset());
                    refusal.set(RefusalCode.fromWireCode(body.code()).label() + " " + body.id() + ": " +
                        ControlFlyweight.getText(b, h.blockOffset() + h.blockLength(), offset + l));
                }
            });
            awaitReplies(replies, assembler, () -> refusal.get() != null, deadline);
            assertEquals("version " + LinkFixture.hello(DISK, 5).generationId() +
                ": wire version 2 is not spoken here (version 1)", refusal.get());
        }
        assertEquals(1, pair.endpoint.refusals());
    }

    /** Requests from a session that was never accepted are counted and never reach the sink. */
    @Test
    void foreignSessionIsNeverApplied() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(true, context);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        final var aeron = pair.primaryMedia.aeron();
        try (ExclusivePublication intruder = aeron.addExclusivePublication(pair.channel.publicationChannel(),
            WireProtocol.DATA_STREAM_ID))
        {
            final UnsafeBuffer buffer = new UnsafeBuffer(new byte[MessageHeader.LENGTH + RequestFlyweight.BLOCK_LENGTH +
                4096]);
            new MessageHeader().wrap(buffer, 0).encode(WireProtocol.WRITE);
            new RequestFlyweight().wrap(buffer, MessageHeader.LENGTH).encode(1, 0, 4096, 0);
            buffer.setMemory(MessageHeader.LENGTH + RequestFlyweight.BLOCK_LENGTH, 4096, (byte)0x66);
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            offer(intruder, buffer, buffer.capacity(), deadline);
            while (pair.endpoint.ignoredMessages() == 0 && System.nanoTime() < deadline)
            {
                Thread.sleep(1);
            }
        }
        assertEquals(1, pair.endpoint.ignoredMessages());
        assertEquals(0, pair.endpoint.applied());
        final byte[] disk = Files.readAllBytes(pair.file);
        for (int i = 0; i < 4096; i++)
        {
            assertEquals(0, disk[i]);
        }
        // The accepted session still works.
        final MemorySegment data = arena.allocate(4096, 4096);
        data.fill((byte)0x11);
        final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
        submit(s -> link.forwarding().write(0, data, 4096, 0, (c, r) -> result.set(r), s), 0);
        while (result.get() == Integer.MIN_VALUE)
        {
            Thread.onSpinWait();
        }
        assertEquals(4096, result.get());
        assertEquals(0x11, Files.readAllBytes(pair.file)[4095]);
    }

    /**
     * A hand-rolled primary links up and sends WRITEs larger than a frame (reassembled before they are read). One
     * carrying less data than it declares, and one declaring more than a part may hold, are answered EINVAL and
     * applied nowhere; a well-formed one lands, and so does the declared length of one that carries more. The link
     * stays up.
     */
    @Test
    void fragmentedWritesShorterThanDeclaredAreAnsweredEinvalAndNeverApplied() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(false, context);
        final var aeron = pair.primaryMedia.aeron();
        final int sessionId = 0x5eed;
        try (Subscription replies = aeron.addSubscription("aeron:ipc", WireProtocol.REPLY_STREAM_ID);
            ExclusivePublication control = aeron.addExclusivePublication(
                pair.channel.publicationChannel(sessionId), WireProtocol.CONTROL_STREAM_ID);
            ExclusivePublication data = aeron.addExclusivePublication(
                pair.channel.publicationChannel(sessionId), WireProtocol.DATA_STREAM_ID))
        {
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            final UnsafeBuffer buffer = new UnsafeBuffer(new byte[MessageHeader.LENGTH + RequestFlyweight.BLOCK_LENGTH +
                (200 << 10)]);
            new MessageHeader().wrap(buffer, 0).encode(WireProtocol.HELLO);
            final int helloLength = MessageHeader.LENGTH + new HelloFlyweight().wrap(buffer, MessageHeader.LENGTH)
                .encode(new Hello(DISK, 65536, false, 77, 5, 1_000, 60_000), WireProtocol.REPLY_STREAM_ID,
                "aeron:ipc");
            offer(control, buffer, helloLength, deadline);
            final Map<Long, Integer> answers = new ConcurrentHashMap<>();
            final AtomicInteger helloAcks = new AtomicInteger();
            final FragmentAssembler assembler = new FragmentAssembler((b, offset, l, header) ->
            {
                final MessageHeader h = new MessageHeader().wrap(b, offset);
                if (h.templateId() == WireProtocol.HELLO_ACK)
                {
                    helloAcks.incrementAndGet();
                }
                else if (h.templateId() == WireProtocol.ACK)
                {
                    final AckFlyweight ack = new AckFlyweight().wrap(b, h.blockOffset());
                    answers.put(ack.cookie(), ack.result());
                }
            });
            awaitReplies(replies, assembler, () -> helloAcks.get() == 1, deadline);

            final int dataOffset = MessageHeader.LENGTH + RequestFlyweight.BLOCK_LENGTH;
            final MessageHeader header = new MessageHeader().wrap(buffer, 0);
            final RequestFlyweight request = new RequestFlyweight().wrap(buffer, MessageHeader.LENGTH);
            header.encode(WireProtocol.WRITE);
            buffer.setMemory(dataOffset, 100 << 10, (byte)0x66);
            request.encode(1, 0, 200 << 10, 0);
            offer(data, buffer, dataOffset + (100 << 10), deadline);
            buffer.setMemory(dataOffset, 100 << 10, (byte)0x5a);
            request.encode(2, 256 << 10, 100 << 10, 0);
            offer(data, buffer, dataOffset + (100 << 10), deadline);
            request.encode(3, 512 << 10, 300 << 10, 0);
            offer(data, buffer, dataOffset + (100 << 10), deadline);
            buffer.setMemory(dataOffset, 100 << 10, (byte)0x77);
            request.encode(4, 1 << 20, 50 << 10, 0);
            offer(data, buffer, dataOffset + (100 << 10), deadline);
            awaitReplies(replies, assembler, () -> answers.size() == 4, deadline);

            assertEquals(Map.of(1L, -Errno.EINVAL, 2L, 100 << 10, 3L, -Errno.EINVAL, 4L, 50 << 10), answers);
            assertEquals(2, pair.endpoint.applied());
            assertEquals(PeerControl.State.UP, pair.endpoint.link().state());
            final byte[] disk = Files.readAllBytes(pair.file);
            for (int i = 0; i < (2 << 20); i++)
            {
                final int expected = i >= (256 << 10) && i < (356 << 10) ? 0x5a :
                    i >= (1 << 20) && i < (1 << 20) + (50 << 10) ? 0x77 : 0;
                if (disk[i] != expected)
                {
                    fail("byte " + i + " is " + disk[i] + ", expected " + expected);
                }
            }
        }
    }

    private static void offer(
        final ExclusivePublication publication, final UnsafeBuffer buffer, final int length, final long deadline)
        throws InterruptedException
    {
        while (publication.offer(buffer, 0, length) < 0)
        {
            if (System.nanoTime() > deadline)
            {
                fail("could not send");
            }
            Thread.sleep(1);
        }
    }

    private static void awaitReplies(
        final Subscription replies, final FragmentAssembler assembler, final BooleanSupplier done, final long deadline)
        throws InterruptedException
    {
        while (!done.getAsBoolean())
        {
            if (System.nanoTime() > deadline)
            {
                fail("no answer in time");
            }
            if (replies.poll(assembler, 10) == 0)
            {
                Thread.sleep(1);
            }
        }
    }

    /** Nobody listening: connect fails with an IOException at the handshake deadline, and leaves nothing behind. */
    @Test
    void connectToNobodyTimesOut() throws Exception
    {
        final AeronMedia media = own(AeronMedia.embedded());
        final long start = System.nanoTime();
        final IOException error = assertThrows(IOException.class,
            () -> AeronPrimaryLink.connect(media, LinkFixture.channel(true), new Hello(DISK, 65536, false, 1, 5, 100,
                1000), new AeronLinkContext().handshakeTimeoutNanos(TimeUnit.MILLISECONDS.toNanos(500)), () -> 5,
                new LinkFixture.Events()));
        assertTrue(error.getMessage().contains("no secondary answers"), error.getMessage());
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(3));
    }

    /** A port already bound by another process is named in an IOException, not a runtime failure. */
    @Test
    void listeningOnABusyPortIsAnIOException() throws Exception
    {
        final AeronMedia media = own(AeronMedia.embedded());
        final MemoryDevice sink = new MemoryDevice(arena.allocate(DISK, 4096));
        try (DatagramSocket taken = new DatagramSocket(0, InetAddress.getLoopbackAddress()))
        {
            final AeronChannel channel = AeronChannel.parse("aeron:udp?endpoint=127.0.0.1:" + taken.getLocalPort());
            final IOException error = assertThrows(IOException.class, () -> own(AeronSecondaryEndpoint.listen(media,
                channel, sink, new LinkFixture.Acceptor(DISK, 5), () -> 5, new AeronLinkContext())));
            assertTrue(error.getMessage().startsWith("cannot listen on aeron:udp?endpoint=127.0.0.1:"),
                error.getMessage());
        }
    }
}
