package io.understudy.nbd.control;

import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerRefusedException;
import io.understudy.engine.link.RefusalCode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The control link over real loopback TCP: handshake and refusals, checkpoint round trip, heartbeats, goodbye. */
class ControlLinkTest
{
    private static final long DISK = 16 << 20;
    private static final int CLUSTER = 65536;

    private final List<AutoCloseable> closeables = new ArrayList<>();
    private final BlockingQueue<String> secondaryEvents = new LinkedBlockingQueue<>();
    private final BlockingQueue<String> primaryEvents = new LinkedBlockingQueue<>();
    private final BlockingQueue<PeerControl> accepted = new LinkedBlockingQueue<>();
    private final AtomicLong secondaryEpoch = new AtomicLong();

    @AfterEach
    void closeAll() throws Exception
    {
        for (int i = closeables.size() - 1; i >= 0; i--)
        {
            closeables.get(i).close();
        }
    }

    private ControlLinkListener listener()
        throws IOException
    {
        final ControlLinkListener listener = new ControlLinkListener("127.0.0.1", 0, 2000, secondaryEpoch::get,
            new LinkAcceptor()
            {
                @Override
                public LinkAcceptor.Refusal check(final Hello hello)
                {
                    if (hello.diskSize() != DISK)
                    {
                        return new LinkAcceptor.Refusal(RefusalCode.DISK_SIZE, "size " +
                            hello.diskSize());
                    }
                    return hello.clusterSize() == CLUSTER ? null :
                        new LinkAcceptor.Refusal(RefusalCode.CLUSTER_SIZE, "cluster");
                }

                @Override
                public PeerControl.Listener listenerFor(final Hello hello)
                {
                    return recorder(secondaryEvents, true);
                }

                @Override
                public void onLink(final PeerControl link, final Hello hello)
                {
                    accepted.add(link);
                }
            });
        closeables.add(listener);
        return listener;
    }

    private PeerControl.Listener recorder(final BlockingQueue<String> events, final boolean secondary)
    {
        return new PeerControl.Listener()
        {
            @Override
            public PeerControl.CheckpointAnswer onCheckpointPrepare(final long deadlineNanos, final long primaryEpoch)
            {
                events.add("prepare " + primaryEpoch);
                if (!secondary)
                {
                    return new PeerControl.CheckpointAnswer(-22, 0, "not a secondary");
                }
                return new PeerControl.CheckpointAnswer(0, secondaryEpoch.incrementAndGet(), "");
            }

            @Override
            public void onLost(final String reason)
            {
                events.add("lost: " + reason);
            }

            @Override
            public void onGoodbye(final boolean failover, final String reason)
            {
                events.add("goodbye " + failover + ": " + reason);
            }
        };
    }

    private ControlLink connect(final int port, final Hello hello) throws IOException
    {
        final ControlLink link = ControlLink.connect(new InetSocketAddress("127.0.0.1", port), hello, 2000,
            () -> 0, recorder(primaryEvents, false));
        closeables.add(link);
        return link;
    }

    private static Hello hello(final long disk, final int cluster, final int intervalMs, final int timeoutMs)
    {
        return new Hello(disk, cluster, false, 42, 0, intervalMs, timeoutMs);
    }

    @Test
    void checkpointRunsOnTheSecondaryAndAnswersWithItsEpoch() throws Exception
    {
        final ControlLinkListener listener = listener();
        final ControlLink primary = connect(listener.port(), hello(DISK, CLUSTER, 50, 2000));
        final PeerControl secondary = accepted.poll(5, TimeUnit.SECONDS);
        assertNotNull(secondary);
        closeables.add(secondary);
        for (int epoch = 1; epoch <= 3; epoch++)
        {
            final PeerControl.CheckpointAnswer answer =
                primary.checkpointPeer(System.nanoTime() + TimeUnit.SECONDS.toNanos(5), epoch - 1);
            assertEquals(new PeerControl.CheckpointAnswer(0, epoch, ""), answer);
            assertEquals("prepare " + (epoch - 1), secondaryEvents.poll());
        }
        // Many heartbeat intervals with nothing else on the link: only heartbeats keep the silence below the
        // sleep. The timeout is far longer, so that a stalled thread on a loaded machine does not end the link.
        Thread.sleep(600);
        assertEquals(PeerControl.State.UP, primary.state());
        assertEquals(PeerControl.State.UP, secondary.state());
        assertTrue(primary.silenceMillis() < 600, "silence " + primary.silenceMillis());
    }

    @Test
    void mismatchedDisksAreRefusedWithANamedReason() throws Exception
    {
        final ControlLinkListener listener = listener();
        final PeerRefusedException size = assertThrows(PeerRefusedException.class,
            () -> connect(listener.port(), hello(DISK + 4096, CLUSTER, 50, 500)));
        assertEquals(RefusalCode.DISK_SIZE, size.code());
        assertTrue(size.getMessage().contains("(disk-size): size " + (DISK + 4096)), size.getMessage());
        final PeerRefusedException cluster = assertThrows(PeerRefusedException.class,
            () -> connect(listener.port(), hello(DISK, 4096, 50, 500)));
        assertEquals(RefusalCode.CLUSTER_SIZE, cluster.code());
        final PeerRefusedException heartbeat = assertThrows(PeerRefusedException.class,
            () -> connect(listener.port(), hello(DISK, CLUSTER, 500, 500)));
        assertEquals(RefusalCode.PROTOCOL, heartbeat.code());
    }

    @Test
    void anotherVersionIsRefusedByName() throws Exception
    {
        final ControlLinkListener listener = listener();
        try (Socket socket = new Socket("127.0.0.1", listener.port()))
        {
            final DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            out.writeInt(ControlProtocol.MAGIC);
            out.writeShort(2);
            out.writeShort(ControlProtocol.HELLO);
            out.writeLong(0);
            out.writeInt(0);
            out.flush();
            final DataInputStream in = new DataInputStream(socket.getInputStream());
            assertEquals(ControlProtocol.MAGIC, in.readInt());
            assertEquals(ControlProtocol.VERSION, in.readShort());
            assertEquals(ControlProtocol.REFUSE, in.readShort());
            in.readLong();
            in.readInt();
            assertEquals(RefusalCode.VERSION.wireCode(), in.readShort());
        }
    }

    @Test
    void silenceBeyondTheTimeoutIsReportedAsLostAndFailsAPendingCheckpoint() throws Exception
    {
        // A "secondary" that completes the handshake and then says nothing: a hung peer.
        try (ServerSocket mute = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()))
        {
            final Thread peer = Thread.ofPlatform().daemon(true).start(() ->
            {
                try (Socket socket = mute.accept())
                {
                    final DataInputStream in = new DataInputStream(socket.getInputStream());
                    in.readFully(new byte[ControlProtocol.HEADER_LENGTH + HelloCodec.LENGTH]);
                    final DataOutputStream out = new DataOutputStream(socket.getOutputStream());
                    out.writeInt(ControlProtocol.MAGIC);
                    out.writeShort(ControlProtocol.VERSION);
                    out.writeShort(ControlProtocol.HELLO_ACK);
                    out.writeLong(0);
                    out.writeInt(16);
                    out.writeLong(42);
                    out.writeLong(0);
                    out.flush();
                    Thread.sleep(5000);
                }
                catch (final IOException | InterruptedException ignored)
                {
                    // The test closes the link; the mute peer just ends.
                }
            });
            final long start = System.nanoTime();
            final ControlLink primary = connect(mute.getLocalPort(), hello(DISK, CLUSTER, 50, 300));
            final PeerControl.CheckpointAnswer answer =
                primary.checkpointPeer(System.nanoTime() + TimeUnit.SECONDS.toNanos(5), 0);
            final long elapsedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertEquals(-32, answer.result(), answer.toString());
            assertTrue(elapsedMillis >= 300 && elapsedMillis < 2000, "lost after " + elapsedMillis + " ms");
            final String event = primaryEvents.poll(5, TimeUnit.SECONDS);
            assertEquals("lost: no heartbeat from " + primary.peerName() + " for 300 ms", event);
            assertEquals(PeerControl.State.LOST, primary.state());
            peer.interrupt();
        }
    }

    @Test
    void goodbyeReachesThePeerAndTheLinkNeverComesBack() throws Exception
    {
        final ControlLinkListener listener = listener();
        final ControlLink primary = connect(listener.port(), hello(DISK, CLUSTER, 50, 500));
        final PeerControl secondary = accepted.poll(5, TimeUnit.SECONDS);
        closeables.add(secondary);
        secondary.goodbye(true, "took over");
        assertEquals("goodbye true: took over", primaryEvents.poll(5, TimeUnit.SECONDS));
        assertEquals(PeerControl.State.GONE, primary.state());
        assertEquals(PeerControl.State.CLOSED, secondary.state());
        assertEquals(-32, primary.checkpointPeer(System.nanoTime() + 1_000_000_000L, 0).result());
        Thread.sleep(200);
        assertTrue(secondaryEvents.isEmpty(), secondaryEvents.toString());
        assertTrue(primaryEvents.isEmpty(), primaryEvents.toString());
    }
}
