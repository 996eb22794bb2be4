package io.understudy.cli.demo;

import io.understudy.aeron.AeronChannel;
import io.understudy.aeron.AeronLinkContext;
import io.understudy.aeron.AeronMedia;
import io.understudy.aeron.AeronPrimaryLink;
import io.understudy.aeron.AeronSecondaryEndpoint;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationSecondary;
import org.agrona.CloseHelper;

import java.io.IOException;
import java.util.concurrent.ThreadLocalRandom;

/**
 * {@link DemoLink} over Aeron IPC through an embedded media driver, as the daemons run it with {@code aeron:ipc}:
 * the secondary's endpoint applies the forwarded writes to its sink, and the secondary's part of a checkpoint runs
 * behind the in-band barrier, so it starts only after every earlier forwarded write was acknowledged.
 */
final class AeronDemoLink implements DemoLink
{
    private static final int HEARTBEAT_MS = 200;
    private static final int HEARTBEAT_TIMEOUT_MS = 5_000;

    private final AeronMedia media;
    private final AeronSecondaryEndpoint endpoint;
    private final AeronPrimaryLink link;
    private final PowerCut forwarding;
    private final ReplicationSecondary secondary;
    private final ReplicationPrimary.PeerCheckpoint peerCheckpoint;

    private AeronDemoLink(
        final AeronMedia media, final AeronSecondaryEndpoint endpoint, final AeronPrimaryLink link,
        final ReplicationSecondary secondary)
    {
        this.media = media;
        this.endpoint = endpoint;
        this.link = link;
        this.secondary = secondary;
        this.forwarding = new PowerCut(link.forwarding());
        // Primary and secondary of the demo advance their epochs together, so the secondary's is the primary's.
        this.peerCheckpoint = deadline -> link.checkpointPeer(deadline, secondary.epoch()).result();
    }

    static AeronDemoLink open(final ReplicationSecondary secondary) throws IOException
    {
        final AeronMedia media = AeronMedia.embedded();
        AeronSecondaryEndpoint endpoint = null;
        try
        {
            final AeronChannel channel = AeronChannel.parse("aeron:ipc");
            endpoint = AeronSecondaryEndpoint.listen(media, channel, secondary.sink(), new Acceptor(secondary),
                secondary::epoch, new AeronLinkContext());
            final Hello hello = new Hello(secondary.view().size(), DemoPhase.CLUSTER_SIZE, secondary.isShared(),
                ThreadLocalRandom.current().nextLong(), secondary.epoch(), HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS);
            final AeronPrimaryLink link = AeronPrimaryLink.connect(media, channel, hello, new AeronLinkContext(),
                secondary::epoch, new Quiet());
            return new AeronDemoLink(media, endpoint, link, secondary);
        }
        catch (final IOException | RuntimeException e)
        {
            CloseHelper.quietCloseAll(endpoint, media);
            throw e;
        }
    }

    @Override
    public BlockDevice forwarding()
    {
        return forwarding;
    }

    @Override
    public ReplicationPrimary.PeerCheckpoint peerCheckpoint()
    {
        return peerCheckpoint;
    }

    /** Cuts the forwarding device, then ends the link: the secondary applies nothing of this session afterwards. */
    @Override
    public void sever()
    {
        forwarding.cut();
        link.close();
    }

    @Override
    public String description()
    {
        return "aeron ipc, embedded driver";
    }

    @Override
    public void close()
    {
        CloseHelper.closeAll(link, endpoint, media);
    }

    /** The secondary's side: accepts the demo's one primary and runs its checkpoint behind the barrier. */
    private static final class Acceptor implements LinkAcceptor
    {
        private final ReplicationSecondary secondary;

        Acceptor(final ReplicationSecondary secondary)
        {
            this.secondary = secondary;
        }

        @Override
        public Refusal check(final Hello hello)
        {
            return null;
        }

        @Override
        public PeerControl.Listener listenerFor(final Hello hello)
        {
            return new Quiet()
            {
                @Override
                public PeerControl.CheckpointAnswer onCheckpointPrepare(
                    final long deadlineNanos, final long primaryEpoch)
                {
                    final CheckpointReport report = secondary.checkpoint(
                        Math.max(0, deadlineNanos - System.nanoTime()));
                    return new PeerControl.CheckpointAnswer(report.result(), report.epoch(), report.reason());
                }
            };
        }

        @Override
        public void onLink(final PeerControl control, final Hello hello)
        {
        }
    }

    /** The demo ends the link itself (the crash, the end of a phase): there is nothing to tell anyone. */
    private static class Quiet implements PeerControl.Listener
    {
        @Override
        public PeerControl.CheckpointAnswer onCheckpointPrepare(final long deadlineNanos, final long primaryEpoch)
        {
            return new PeerControl.CheckpointAnswer(-Errno.EINVAL, -1, "the primary takes no checkpoints from a peer");
        }

        @Override
        public void onLost(final String reason)
        {
        }

        @Override
        public void onGoodbye(final boolean failover, final String reason)
        {
        }
    }
}
