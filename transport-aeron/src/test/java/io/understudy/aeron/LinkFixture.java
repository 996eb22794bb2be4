package io.understudy.aeron;

import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.RefusalCode;

import java.io.IOException;
import java.net.DatagramSocket;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

/**
 * Pieces the Aeron link tests share: channels on free ports, an acceptor with the usual checks, a recording
 * listener.
 */
final class LinkFixture
{
    static final int INTERVAL_MILLIS = 100;
    static final int TIMEOUT_MILLIS = 1_000;

    private LinkFixture()
    {
    }

    /** @return a UDP channel on a free loopback port, or IPC. */
    static AeronChannel channel(final boolean udp) throws IOException
    {
        return channel(udp, "");
    }

    /** @param extraParams more URI parameters ({@code key=value|...}), or empty. */
    static AeronChannel channel(final boolean udp, final String extraParams) throws IOException
    {
        if (!udp)
        {
            return AeronChannel.parse("aeron:ipc" + (extraParams.isEmpty() ? "" : "?" + extraParams));
        }
        try (DatagramSocket socket = new DatagramSocket(0))
        {
            return AeronChannel.parse("aeron:udp?endpoint=127.0.0.1:" + socket.getLocalPort() +
                (extraParams.isEmpty() ? "" : "|" + extraParams));
        }
    }

    static Hello hello(final long diskSize, final long epoch)
    {
        return new Hello(diskSize, 65536, false, 0x1234_5678L, epoch, INTERVAL_MILLIS, TIMEOUT_MILLIS);
    }

    /** Records what a link's owner hears; answers checkpoints with {@link #checkpoint}. */
    static final class Events implements PeerControl.Listener
    {
        final CopyOnWriteArrayList<String> lost = new CopyOnWriteArrayList<>();
        final CopyOnWriteArrayList<String> goodbyes = new CopyOnWriteArrayList<>();
        final AtomicLong checkpoints = new AtomicLong();
        volatile long lostAtNanos;
        volatile Function<Long, PeerControl.CheckpointAnswer> checkpoint =
            epoch -> new PeerControl.CheckpointAnswer(0, epoch + 1, "");

        @Override
        public PeerControl.CheckpointAnswer onCheckpointPrepare(final long deadlineNanos, final long primaryEpoch)
        {
            checkpoints.incrementAndGet();
            return checkpoint.apply(primaryEpoch);
        }

        @Override
        public void onLost(final String reason)
        {
            lostAtNanos = System.nanoTime();
            lost.add(reason);
        }

        @Override
        public void onGoodbye(final boolean failover, final String reason)
        {
            goodbyes.add(reason);
        }

        boolean awaitLost(final long timeoutMillis) throws InterruptedException
        {
            final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
            while (lost.isEmpty() && System.nanoTime() < deadline)
            {
                Thread.sleep(5);
            }
            return !lost.isEmpty();
        }
    }

    /** The secondary's decisions: disk size and epoch must match, everything else is accepted. */
    static final class Acceptor implements LinkAcceptor
    {
        final long diskSize;
        final Events events = new Events();
        volatile long epoch;
        volatile PeerControl link;

        Acceptor(final long diskSize, final long epoch)
        {
            this.diskSize = diskSize;
            this.epoch = epoch;
        }

        @Override
        public Refusal check(final Hello hello)
        {
            if (hello.diskSize() != diskSize)
            {
                return new Refusal(RefusalCode.DISK_SIZE, "disk is " + diskSize + " bytes, primary has " +
                    hello.diskSize());
            }
            if (hello.epoch() != epoch)
            {
                return new Refusal(RefusalCode.EPOCH, "secondary is at epoch " + epoch + ", primary at " +
                    hello.epoch());
            }
            return null;
        }

        @Override
        public PeerControl.Listener listenerFor(final Hello hello)
        {
            return events;
        }

        @Override
        public void onLink(final PeerControl link, final Hello hello)
        {
            this.link = link;
        }
    }
}
