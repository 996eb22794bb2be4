package io.understudy.aeron;

import io.understudy.engine.device.Errno;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerRefusedException;
import io.understudy.engine.link.RefusalCode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The forwarding and control contracts over a real embedded media driver, IPC and UDP on 127.0.0.1: every byte
 * that reaches the secondary's file is compared with a reference model.
 */
@Timeout(120)
class AeronLinkTest extends LinkTestBase
{
    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void forwardingContractIsByteExact(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(udp, context);
        final LinkFixture.Events events = new LinkFixture.Events();
        final AeronPrimaryLink link = pair.connect(events, context);
        assertEquals(PeerControl.State.UP, link.state());
        runContract(pair, link, 40, 42);
        assertEquals(link.forwarded(), link.acked());
        assertTrue(events.lost.isEmpty(), events.lost.toString());
        assertEquals(0, pair.endpoint.ignoredMessages());
    }

    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void barrierCompletesAfterEveryEarlierWrite(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(udp, context);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        final int writes = 64;
        final MemorySegment buffer = arena.allocate(64 << 10, 4096);
        buffer.fill((byte)0x5A);
        final AtomicInteger completed = new AtomicInteger();
        final AtomicInteger completedAtCheckpoint = new AtomicInteger(-1);
        pair.acceptor.events.checkpoint = epoch ->
        {
            completedAtCheckpoint.set((int)pair.endpoint.acksSent());
            return new PeerControl.CheckpointAnswer(0, epoch + 1, "done");
        };
        for (int i = 0; i < writes; i++)
        {
            final long offset = (long)i * (64 << 10);
            submit(s -> link.forwarding().write(offset, buffer, 64 << 10, 0, (c, r) -> completed.incrementAndGet(),
                s), i);
        }
        final PeerControl.CheckpointAnswer answer = link.checkpointPeer(System.nanoTime() +
            TimeUnit.SECONDS.toNanos(10), 5);
        assertEquals(0, answer.result(), answer.reason());
        assertEquals(6, answer.epoch());
        assertEquals("done", answer.reason());
        assertEquals(writes, completed.get(), "every earlier write completed on the primary");
        assertEquals(writes, completedAtCheckpoint.get(), "every earlier write acknowledged before the checkpoint");
        final byte[] disk = Files.readAllBytes(pair.file);
        for (int i = 0; i < writes * (64 << 10); i++)
        {
            if (disk[i] != 0x5A)
            {
                fail("byte " + i + " not written before the checkpoint answered");
            }
        }
    }

    @Test
    void checkpointTimesOutAtTheDeadline() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(false, context);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        pair.acceptor.events.checkpoint = epoch ->
        {
            try
            {
                Thread.sleep(700);
            }
            catch (final InterruptedException ex)
            {
                Thread.currentThread().interrupt();
            }
            return new PeerControl.CheckpointAnswer(0, epoch + 1, "");
        };
        final long start = System.nanoTime();
        final PeerControl.CheckpointAnswer answer = link.checkpointPeer(start + TimeUnit.MILLISECONDS.toNanos(200),
            5);
        assertEquals(-Errno.ETIMEDOUT, answer.result());
        assertTrue(System.nanoTime() - start < TimeUnit.MILLISECONDS.toNanos(650));
        assertEquals(PeerControl.State.UP, link.state(), "heartbeats kept flowing while the checkpoint ran");
    }

    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void refusalsNameTheirReason(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext().handshakeTimeoutNanos(TimeUnit.SECONDS.toNanos(3));
        final Pair pair = new Pair(udp, context);
        final PeerRefusedException size = assertThrows(PeerRefusedException.class, () -> own(AeronPrimaryLink.connect(
            pair.primaryMedia, pair.channel, LinkFixture.hello(DISK * 2L, 5), context, () -> 5,
            new LinkFixture.Events())));
        assertEquals(RefusalCode.DISK_SIZE, size.code());
        assertTrue(size.getMessage().contains("disk is " + DISK), size.getMessage());
        final PeerRefusedException epoch = assertThrows(PeerRefusedException.class, () -> own(AeronPrimaryLink.connect(
            pair.primaryMedia, pair.channel, LinkFixture.hello(DISK, 4), context, () -> 4,
            new LinkFixture.Events())));
        assertEquals(RefusalCode.EPOCH, epoch.code());

        final AeronPrimaryLink first = pair.connect(new LinkFixture.Events(), context);
        final PeerRefusedException busy = assertThrows(PeerRefusedException.class, () -> own(AeronPrimaryLink.connect(
            pair.primaryMedia, pair.channel, new Hello(DISK, 65536, false, 99, 5, 100, 1000),
            context, () -> 5, new LinkFixture.Events())));
        assertEquals(RefusalCode.BUSY, busy.code());
        assertEquals(PeerControl.State.UP, first.state());
        assertEquals(3, pair.endpoint.refusals());
    }

    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void primaryNoticesALostSecondaryWithinTheTimeout(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia secondaryMedia = own(AeronMedia.embedded());
        final Pair pair = new Pair(udp, context, secondaryMedia, udp ? own(AeronMedia.embedded()) : secondaryMedia);
        final LinkFixture.Events events = new LinkFixture.Events();
        final AeronPrimaryLink link = pair.connect(events, context);
        Thread.sleep(300);
        assertEquals(PeerControl.State.UP, link.state());
        final long killed = System.nanoTime();
        if (udp)
        {
            // Abrupt: the secondary's client and driver vanish without a goodbye.
            secondaryMedia.close();
        }
        else
        {
            // IPC shares the driver: silence the secondary (its link ends without a goodbye, its agent stops).
            ((SecondaryLink)pair.endpoint.link()).lost("test: silenced");
            pair.endpoint.close();
        }
        assertTrue(events.awaitLost(LinkFixture.TIMEOUT_MILLIS * 5L), "primary never noticed");
        final long noticedMillis = TimeUnit.NANOSECONDS.toMillis(events.lostAtNanos - killed);
        assertTrue(noticedMillis <= LinkFixture.TIMEOUT_MILLIS + 1_000, "noticed after " + noticedMillis + " ms");
        assertEquals(PeerControl.State.LOST, link.state());
        assertTrue(link.reason().contains("no heartbeat"), link.reason());
        final AtomicIntegerArray result = new AtomicIntegerArray(new int[]{Integer.MIN_VALUE});
        final MemorySegment buffer = arena.allocate(4096, 4096);
        assertTrue(link.forwarding().write(0, buffer, 4096, 0, (c, r) -> result.set(0, r), 0));
        assertEquals(-Errno.EIO, result.get(0), "a write after the loss fails at once");
    }

    @Test
    void secondaryNoticesALostPrimaryWithinTheTimeout() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia primaryMedia = own(AeronMedia.embedded());
        final Pair pair = new Pair(true, context, own(AeronMedia.embedded()), primaryMedia);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        Thread.sleep(300);
        assertEquals(PeerControl.State.UP, pair.acceptor.link.state());
        final long killed = System.nanoTime();
        primaryMedia.close();
        assertTrue(pair.acceptor.events.awaitLost(LinkFixture.TIMEOUT_MILLIS * 5L), "secondary never noticed");
        final long noticedMillis = TimeUnit.NANOSECONDS.toMillis(pair.acceptor.events.lostAtNanos - killed);
        assertTrue(noticedMillis <= LinkFixture.TIMEOUT_MILLIS + 1_000, "noticed after " + noticedMillis + " ms");
        assertEquals(PeerControl.State.LOST, pair.acceptor.link.state());
        assertTrue(pair.acceptor.link.reason().contains("no heartbeat"), pair.acceptor.link.reason());
        link.close();
    }

    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void goodbyeReachesTheOtherSide(final boolean udp) throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(udp, context);
        final LinkFixture.Events events = new LinkFixture.Events();
        final AeronPrimaryLink link = pair.connect(events, context);
        link.goodbye(true, "failover drill");
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (pair.acceptor.events.goodbyes.isEmpty() && System.nanoTime() < deadline)
        {
            Thread.sleep(5);
        }
        assertEquals(List.of("failover drill"), pair.acceptor.events.goodbyes);
        assertEquals(PeerControl.State.GONE, pair.acceptor.link.state());
        assertEquals(PeerControl.State.CLOSED, link.state());

        final LinkFixture.Events second = new LinkFixture.Events();
        final AeronPrimaryLink again = pair.connect(second, context);
        pair.acceptor.link.goodbye(false, "secondary stops");
        final long deadline2 = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (second.goodbyes.isEmpty() && System.nanoTime() < deadline2)
        {
            Thread.sleep(5);
        }
        assertEquals(List.of("secondary stops"), second.goodbyes);
        assertEquals(PeerControl.State.GONE, again.state());
    }

    /** Shared mode: writes travel as COW_DATA and land on the sink (the secondary's hidden disk) all the same. */
    @Test
    void sharedModeShipsCowData() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final Pair pair = new Pair(false, context);
        final AeronPrimaryLink link = own(AeronPrimaryLink.connect(pair.primaryMedia, pair.channel,
            new Hello(DISK, 65536, true, 3, 5, 100, 1000), context, () -> 5,
            new LinkFixture.Events()));
        final MemorySegment data = arena.allocate(65536, 4096);
        data.fill((byte)0x3C);
        final AtomicIntegerArray result = new AtomicIntegerArray(new int[]{Integer.MIN_VALUE});
        submit(s -> link.forwarding().write(65536, data, 65536, 0, (c, r) -> result.set(0, r), s), 0);
        awaitAll(result, 1);
        assertEquals(65536, result.get(0));
        final byte[] disk = Files.readAllBytes(pair.file);
        for (int i = 65536; i < 131072; i++)
        {
            assertEquals(0x3C, disk[i]);
        }
    }
}
