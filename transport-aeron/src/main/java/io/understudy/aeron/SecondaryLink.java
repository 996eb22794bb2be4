package io.understudy.aeron;

import io.understudy.engine.device.Errno;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import org.agrona.CloseHelper;
import org.agrona.concurrent.UnsafeBuffer;

import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The secondary's end of one accepted Aeron link (one primary session, from HELLO_ACK on), as the control link
 * the secondary's owner holds: its state, its reply publication and the checkpoint the primary asked for.
 * <p>
 * The endpoint's agent feeds it (heartbeats heard, BARRIER, GOODBYE) and sends on its publication; the checkpoint
 * runs on a thread of its own so that the agent keeps hearing heartbeats and acknowledging requests meanwhile.
 */
final class SecondaryLink implements PeerControl
{
    private static final long GOODBYE_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(200);
    private static final long OFFER_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(200);

    private final int id;
    private final int sessionId;
    private final long generationId;
    private final Hello hello;
    private final GuardedPublication reply;
    private final Listener listener;
    private final LongSupplier epoch;
    private final LinkState link;
    /** Goodbye may be said on the duty thread (a new link replaces this one): its wait must keep Aeron going. */
    private final AeronMedia media;
    private final UnsafeBuffer goodbyeBuffer = new UnsafeBuffer(new byte[MessageHeader.LENGTH +
        ControlFlyweight.BLOCK_LENGTH + 2 + WireProtocol.MAX_TEXT]);
    /** Written by the checkpoint thread when the listener answered, read and cleared by the agent. */
    private volatile CheckpointAnswer checkpointAnswer;

    SecondaryLink(
        final int id, final int sessionId, final Hello hello, final GuardedPublication reply, final Listener listener,
        final LongSupplier epoch, final String peerName, final AeronMedia media)
    {
        this.id = id;
        this.sessionId = sessionId;
        this.generationId = hello.generationId();
        this.hello = hello;
        this.reply = reply;
        this.listener = listener;
        this.epoch = epoch;
        this.link = new LinkState(listener, peerName, System.nanoTime());
        this.media = media;
    }

    int id()
    {
        return id;
    }

    int sessionId()
    {
        return sessionId;
    }

    long generationId()
    {
        return generationId;
    }

    Hello hello()
    {
        return hello;
    }

    GuardedPublication reply()
    {
        return reply;
    }

    LinkState link()
    {
        return link;
    }

    boolean isUp()
    {
        return link.isUp();
    }

    /** Agent: the barrier's earlier requests are all acknowledged; run the checkpoint on its own thread. */
    void startCheckpoint(final long deadlineNanos, final long primaryEpoch)
    {
        checkpointAnswer = null;
        Thread.ofPlatform().daemon(true).name("aeron-checkpoint").start(() ->
        {
            CheckpointAnswer answer;
            try
            {
                answer = listener.onCheckpointPrepare(deadlineNanos, primaryEpoch);
            }
            catch (final RuntimeException ex)
            {
                answer = new CheckpointAnswer(-Errno.EIO, -1, "the checkpoint failed: " + ex);
            }
            checkpointAnswer = answer;
        });
    }

    /** Agent: @return the checkpoint's answer once it is there (taken: the next call returns null). */
    CheckpointAnswer takeCheckpointAnswer()
    {
        final CheckpointAnswer answer = checkpointAnswer;
        if (answer != null)
        {
            checkpointAnswer = null;
        }
        return answer;
    }

    /** Agent: the primary went silent or broke the protocol; the reply stream goes with the link. */
    void lost(final String why)
    {
        link.lost(why, () -> CloseHelper.quietClose(reply));
    }

    /** Agent: the primary said goodbye; the reply stream goes with the link. */
    void gone(final boolean failover, final String text)
    {
        link.gone(failover, text, () -> CloseHelper.quietClose(reply));
    }

    @Override
    public State state()
    {
        return link.state();
    }

    @Override
    public String reason()
    {
        return link.reason();
    }

    @Override
    public long silenceMillis()
    {
        return link.silenceMillis();
    }

    @Override
    public String peerName()
    {
        return link.peerName();
    }

    @Override
    public int heartbeatIntervalMillis()
    {
        return hello.heartbeatIntervalMillis();
    }

    @Override
    public int heartbeatTimeoutMillis()
    {
        return hello.heartbeatTimeoutMillis();
    }

    /** Checkpoints are the primary's to start: the secondary answers BARRIER instead. */
    @Override
    public CheckpointAnswer checkpointPeer(final long deadlineNanos, final long primaryEpoch)
    {
        return new CheckpointAnswer(-Errno.EOPNOTSUPP, -1, "only the primary starts a checkpoint");
    }

    @Override
    public void goodbye(final boolean failover, final String why)
    {
        if (!link.closed(why))
        {
            return;
        }
        synchronized (goodbyeBuffer)
        {
            new MessageHeader().wrap(goodbyeBuffer, 0).encode(WireProtocol.GOODBYE);
            new ControlFlyweight().wrap(goodbyeBuffer, MessageHeader.LENGTH).encode(generationId, epoch.getAsLong(),
                0, failover ? 1 : 0);
            final int length = MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH +
                ControlFlyweight.putText(goodbyeBuffer, MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH, why);
            final long deadline = System.nanoTime() + GOODBYE_WAIT_NANOS;
            while (reply.offer(goodbyeBuffer, 0, length) < 0 && System.nanoTime() - deadline < 0)
            {
                media.awaitProgress(OFFER_PARK_NANOS);
            }
        }
    }

    /** Says goodbye if still up and closes the reply publication. */
    @Override
    public void close()
    {
        goodbye(false, "closing");
        CloseHelper.quietClose(reply);
    }
}
