package io.understudy.aeron;

import io.aeron.Aeron;
import io.aeron.ChannelUri;
import io.aeron.CommonContext;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.Header;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerRefusedException;
import io.understudy.engine.link.RefusalCode;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

/**
 * The primary's end of an Aeron link to a secondary: {@link #forwarding()} is the forwarding link (a
 * {@link BlockDevice}, see {@link AeronForwardingDevice}) and the object itself is the control link
 * ({@link PeerControl}), both over one pair of publications (data and control stream, one session id) and one
 * reply subscription (layout and sequence in {@link WireProtocol}).
 * <p>
 * One agent ({@code aeron-primary}, in the media's duty cycle, {@link AeronMedia#attach}) polls the replies:
 * ACKs complete forwarded requests, BARRIER_DONE answers {@link #checkpointPeer}, HEARTBEAT and everything else
 * from the secondary's session prove it alive; the same duty cycle sends HEARTBEAT every interval and declares the
 * secondary lost after the timeout. Lost or gone, the forwarding device fails every request in flight with
 * {@link Errno#EIO} and every later one, so the engine's {@code PeerLink} latches the error and degrades the pair,
 * exactly as with the NBD link.
 * <p>
 * {@link #checkpointPeer} sends BARRIER on the data stream, behind every request forwarded before it; the secondary
 * runs its checkpoint only after all of those completed and were acknowledged, and its ACKs precede BARRIER_DONE
 * on the reply stream, so when the answer arrives every earlier request has completed here too.
 */
public final class AeronPrimaryLink implements PeerControl
{
    private static final long HANDSHAKE_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(200);
    private static final long GOODBYE_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(200);
    private static final int FRAGMENT_LIMIT = 64;
    private static final int CONTROL_BUFFER_BYTES = MessageHeader.LENGTH + 64 + WireProtocol.MAX_TEXT;
    private static final int ERRNO_EPIPE = 32;
    private static final String ROLE = "aeron-primary";

    private final GuardedPublication data;
    private final GuardedPublication control;
    private final Subscription replies;
    private final int replySessionId;
    private final LongSupplier epoch;
    private final int intervalMillis;
    private final int timeoutMillis;
    private final LinkState link;
    private final AeronForwardingDevice device;
    private final AeronMedia media;
    private final PrimaryAgent agent;
    /** The agent as the media's duty cycle runs it, once attached. */
    private Agent attached;
    private final UnsafeBuffer checkpointBuffer = new UnsafeBuffer(new byte[CONTROL_BUFFER_BYTES]);
    private final UnsafeBuffer goodbyeBuffer = new UnsafeBuffer(new byte[CONTROL_BUFFER_BYTES]);
    private final Object checkpointLock = new Object();
    private final AtomicLong correlations = new AtomicLong();
    private final AtomicLong ignoredMessages = new AtomicLong();
    /** The checkpoint being waited for: written under checkpointLock before BARRIER is sent, read by the agent. */
    private volatile long pendingCorrelation;
    private volatile Thread checkpointWaiter;
    private volatile CheckpointAnswer checkpointAnswer;
    private volatile boolean closed;

    private AeronPrimaryLink(
        final AeronMedia media, final GuardedPublication data, final GuardedPublication control,
        final Subscription replies, final int replySessionId, final Hello hello, final AeronLinkContext context,
        final LongSupplier epoch, final Listener listener, final String peerName)
    {
        this.media = media;
        this.data = data;
        this.control = control;
        this.replies = replies;
        this.replySessionId = replySessionId;
        this.epoch = epoch;
        this.intervalMillis = hello.heartbeatIntervalMillis();
        this.timeoutMillis = hello.heartbeatTimeoutMillis();
        this.link = new LinkState(listener, peerName, System.nanoTime());
        final int partLength = Math.min(context.maxPartLength(),
            data.maxMessageLength() - MessageHeader.LENGTH - RequestFlyweight.BLOCK_LENGTH);
        this.device = new AeronForwardingDevice(data, hello.diskSize(), hello.shared(), context.queueDepth(),
            partLength, context.backPressureWaitNanos(), context.partWaitNanos());
        this.agent = new PrimaryAgent();
    }

    /**
     * Links to the secondary listening on {@code channel}: publishes HELLO (with the reply channel it subscribed
     * to) and waits for HELLO_ACK or REFUSE until the context's handshake timeout.
     *
     * @param media    the Aeron client (and maybe driver) to use; not owned.
     * @param channel  the secondary's channel, {@code aeron:udp?endpoint=HOST:PORT} or {@code aeron:ipc}.
     * @param hello    what the primary announces; its disk size is the forwarding device's size and its heartbeat
     *                 interval and timeout rule both sides.
     * @param epoch    the primary's current epoch, sent in heartbeats.
     * @param listener hears that the secondary was lost or said goodbye (on a thread of its own).
     * @throws PeerRefusedException if the secondary refused, with its reason.
     * @throws IOException          if nobody answers within the handshake timeout, the answer is not the protocol,
     *                              or Aeron refuses the channel.
     */
    public static AeronPrimaryLink connect(
        final AeronMedia media, final AeronChannel channel, final Hello hello, final AeronLinkContext context,
        final LongSupplier epoch, final Listener listener) throws IOException
    {
        context.conclude();
        final String heartbeatProblem = hello.heartbeatProblem();
        if (heartbeatProblem != null)
        {
            throw new IllegalArgumentException(heartbeatProblem);
        }
        final Aeron aeron = media.aeron();
        final long deadline = System.nanoTime() + context.handshakeTimeoutNanos();
        final int sessionId = randomSessionId();
        Subscription replies = null;
        GuardedPublication data = null;
        GuardedPublication control = null;
        try
        {
            replies = aeron.addSubscription(replySubscriptionChannel(channel, context), WireProtocol.REPLY_STREAM_ID);
            final String replyChannel = replyChannel(channel, replies, deadline);
            data = new GuardedPublication(aeron.addExclusivePublication(channel.publicationChannel(sessionId),
                WireProtocol.DATA_STREAM_ID));
            control = new GuardedPublication(aeron.addExclusivePublication(channel.publicationChannel(sessionId),
                WireProtocol.CONTROL_STREAM_ID));
            while (!data.isConnected() || !control.isConnected())
            {
                awaitStep(deadline, "no secondary answers on " + channel);
            }
            final UnsafeBuffer buffer = new UnsafeBuffer(new byte[CONTROL_BUFFER_BYTES]);
            new MessageHeader().wrap(buffer, 0).encode(WireProtocol.HELLO);
            final int length = MessageHeader.LENGTH + new HelloFlyweight().wrap(buffer, MessageHeader.LENGTH)
                .encode(hello, WireProtocol.REPLY_STREAM_ID, replyChannel);
            while (control.offer(buffer, 0, length) < 0)
            {
                awaitStep(deadline, "could not send HELLO to " + channel);
            }
            final HandshakeAnswer answer = new HandshakeAnswer(hello.generationId());
            final FragmentAssembler assembler = new FragmentAssembler(answer);
            while (!answer.done)
            {
                if (replies.poll(assembler, 1) == 0)
                {
                    awaitStep(deadline, "the secondary on " + channel + " did not answer HELLO");
                }
            }
            if (answer.refusal != null)
            {
                throw new PeerRefusedException(answer.refusal, answer.reason);
            }
            final AeronPrimaryLink link = new AeronPrimaryLink(media, data, control, replies, answer.sessionId, hello,
                context, epoch, listener, channel.toString());
            link.attached = media.attach(link.agent, link::onAgentError);
            return link;
        }
        catch (final IOException ex)
        {
            CloseHelper.quietCloseAll(data, control, replies);
            throw ex;
        }
        catch (final RuntimeException ex)
        {
            // Aeron's registration errors (a bad channel, a port in use) are the operator's to fix, like I/O errors.
            CloseHelper.quietCloseAll(data, control, replies);
            throw new IOException("cannot link to " + channel + ": " + ex.getMessage(), ex);
        }
    }

    /** @return the forwarding link: size = the hello's disk size, writes and zeroes and flushes to the secondary. */
    public BlockDevice forwarding()
    {
        return device;
    }

    /** @return this object, the control link. */
    public PeerControl control()
    {
        return this;
    }

    /** @return requests forwarded to the secondary. */
    public long forwarded()
    {
        return device.forwarded();
    }

    /** @return requests the secondary acknowledged successfully. */
    public long acked()
    {
        return device.acked();
    }

    /** @return times a guest write waited for a back-pressured publication. */
    public long backPressureWaits()
    {
        return device.backPressureWaits();
    }

    /** @return nanoseconds guest writes waited for back-pressure in total. */
    public long backPressureNanos()
    {
        return device.backPressureNanos();
    }

    /** @return bytes forwarded and not yet acknowledged. */
    public long unackedBytes()
    {
        return device.unackedBytes();
    }

    /** @return requests in flight. */
    public int inFlight()
    {
        return device.inFlight();
    }

    /** @return messages from other sessions or of other schemas and versions, dropped. */
    public long ignoredMessages()
    {
        return ignoredMessages.get();
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
        return intervalMillis;
    }

    @Override
    public int heartbeatTimeoutMillis()
    {
        return timeoutMillis;
    }

    @Override
    public CheckpointAnswer checkpointPeer(final long deadlineNanos, final long primaryEpoch)
    {
        synchronized (checkpointLock)
        {
            if (!link.isUp())
            {
                return new CheckpointAnswer(-ERRNO_EPIPE, -1, "the link is " + link.state().label());
            }
            final long correlation = correlations.incrementAndGet();
            checkpointAnswer = null;
            checkpointWaiter = Thread.currentThread();
            pendingCorrelation = correlation;
            try
            {
                new MessageHeader().wrap(checkpointBuffer, 0).encode(WireProtocol.BARRIER);
                new ControlFlyweight().wrap(checkpointBuffer, MessageHeader.LENGTH).encode(correlation, primaryEpoch,
                    Math.max(0, deadlineNanos - System.nanoTime()), 0);
                final int length = MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH;
                while (true)
                {
                    final long position = data.offer(checkpointBuffer, 0, length);
                    if (position > 0)
                    {
                        break;
                    }
                    if (position == Publication.CLOSED || !link.isUp())
                    {
                        return new CheckpointAnswer(-ERRNO_EPIPE, -1, "the link is " + link.state().label());
                    }
                    if (System.nanoTime() - deadlineNanos >= 0)
                    {
                        return new CheckpointAnswer(-Errno.ETIMEDOUT, -1,
                            "the barrier could not be sent before the deadline (back-pressure)");
                    }
                    LockSupport.parkNanos(HANDSHAKE_POLL_NANOS);
                }
                while (true)
                {
                    final CheckpointAnswer answer = checkpointAnswer;
                    if (answer != null)
                    {
                        return answer;
                    }
                    if (!link.isUp())
                    {
                        return new CheckpointAnswer(-ERRNO_EPIPE, -1, "the link is " + link.state().label() + ": " +
                            link.reason());
                    }
                    final long left = deadlineNanos - System.nanoTime();
                    if (left <= 0)
                    {
                        return new CheckpointAnswer(-Errno.ETIMEDOUT, -1,
                            "the secondary did not answer before the deadline");
                    }
                    LockSupport.parkNanos(this, Math.min(left, TimeUnit.MILLISECONDS.toNanos(10)));
                }
            }
            finally
            {
                pendingCorrelation = 0;
                checkpointWaiter = null;
            }
        }
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
            new ControlFlyweight().wrap(goodbyeBuffer, MessageHeader.LENGTH).encode(0, epoch.getAsLong(), 0,
                failover ? 1 : 0);
            final int length = MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH +
                ControlFlyweight.putText(goodbyeBuffer, MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH, why);
            final long deadline = System.nanoTime() + GOODBYE_WAIT_NANOS;
            while (control.offer(goodbyeBuffer, 0, length) < 0 && System.nanoTime() - deadline < 0)
            {
                LockSupport.parkNanos(HANDSHAKE_POLL_NANOS);
            }
        }
        device.fail(Errno.ESHUTDOWN);
    }

    /** Says goodbye if still up, fails what is in flight, stops the agent and closes the streams. */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        goodbye(false, "closing");
        device.fail(Errno.ESHUTDOWN);
        if (attached != null)
        {
            media.detach(attached);
        }
        CloseHelper.quietCloseAll(data, control, replies);
    }

    private void lost(final String why)
    {
        link.lost(why, () ->
        {
            device.fail(Errno.EIO);
            final Thread waiter = checkpointWaiter;
            if (waiter != null)
            {
                LockSupport.unpark(waiter);
            }
        });
    }

    private void onAgentError(final Throwable error)
    {
        lost("the link's agent failed: " + error);
    }

    private static String replySubscriptionChannel(final AeronChannel channel, final AeronLinkContext context)
        throws IOException
    {
        if (channel.isIpc())
        {
            return "aeron:ipc";
        }
        final String host = context.replyHost() != null ? context.replyHost() : localAddressTowards(channel.host());
        return "aeron:udp?endpoint=" + (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":0";
    }

    /** @return the channel the secondary publishes replies on: ours, with the data channel's MTU and term length. */
    private static String replyChannel(final AeronChannel channel, final Subscription replies, final long deadline)
        throws IOException
    {
        final ChannelUri uri = ChannelUri.parse(channel.publicationChannel());
        if (!channel.isIpc())
        {
            String resolved;
            while ((resolved = replies.resolvedEndpoint()) == null)
            {
                awaitStep(deadline, "the reply endpoint did not resolve");
            }
            uri.put(CommonContext.ENDPOINT_PARAM_NAME, resolved);
        }
        return uri.toString();
    }

    private static String localAddressTowards(final String host) throws IOException
    {
        try (DatagramSocket probe = new DatagramSocket())
        {
            probe.connect(new InetSocketAddress(InetAddress.getByName(host), 9));
            final InetAddress local = probe.getLocalAddress();
            return local == null || local.isAnyLocalAddress() ? "127.0.0.1" : local.getHostAddress();
        }
    }

    private static void awaitStep(final long deadline, final String failure) throws IOException
    {
        if (System.nanoTime() - deadline >= 0)
        {
            throw new IOException(failure);
        }
        LockSupport.parkNanos(HANDSHAKE_POLL_NANOS);
    }

    private static int randomSessionId()
    {
        int id;
        do
        {
            id = ThreadLocalRandom.current().nextInt();
        }
        while (id == 0 || id == Integer.MIN_VALUE);
        return id;
    }

    /** The handshake's reader: the first HELLO_ACK or REFUSE that names our generation. */
    private static final class HandshakeAnswer implements FragmentHandler
    {
        private final long generationId;
        private final MessageHeader header = new MessageHeader();
        private final ControlFlyweight body = new ControlFlyweight();
        boolean done;
        int sessionId;
        RefusalCode refusal;
        String reason;

        HandshakeAnswer(final long generationId)
        {
            this.generationId = generationId;
        }

        @Override
        public void onFragment(final DirectBuffer buffer, final int offset, final int length, final Header frame)
        {
            header.wrap(buffer, offset);
            if (done || MessageHeader.check(header, length) != MessageHeader.Verdict.OK)
            {
                return;
            }
            final int template = header.templateId();
            if (template != WireProtocol.HELLO_ACK && template != WireProtocol.REFUSE)
            {
                return;
            }
            body.wrap(buffer, header.blockOffset());
            if (body.id() != generationId)
            {
                return;
            }
            done = true;
            sessionId = frame.sessionId();
            if (template == WireProtocol.REFUSE)
            {
                refusal = RefusalCode.fromWireCode(body.code());
                reason = ControlFlyweight.getText(buffer, header.blockOffset() + header.blockLength(),
                    offset + length);
            }
        }
    }

    /** Polls the replies, sends heartbeats, watches the secondary's. */
    private final class PrimaryAgent implements Agent, FragmentHandler
    {
        private final FragmentAssembler assembler = new FragmentAssembler(this);
        private final MessageHeader header = new MessageHeader();
        private final AckFlyweight ack = new AckFlyweight();
        private final ControlFlyweight body = new ControlFlyweight();
        private final UnsafeBuffer heartbeat = new UnsafeBuffer(new byte[MessageHeader.LENGTH +
            ControlFlyweight.BLOCK_LENGTH]);
        private final ControlFlyweight heartbeatBody = new ControlFlyweight();
        private final long intervalNanos = TimeUnit.MILLISECONDS.toNanos(intervalMillis);
        private final long timeoutNanos = TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        private long nowNanos;
        private long nextHeartbeatNanos;

        PrimaryAgent()
        {
            new MessageHeader().wrap(heartbeat, 0).encode(WireProtocol.HEARTBEAT);
            heartbeatBody.wrap(heartbeat, MessageHeader.LENGTH);
        }

        @Override
        public int doWork()
        {
            nowNanos = System.nanoTime();
            int work = replies.poll(assembler, FRAGMENT_LIMIT);
            if (link.isUp())
            {
                if (nowNanos - nextHeartbeatNanos >= 0)
                {
                    heartbeatBody.encode(0, epoch.getAsLong(), 0, 0);
                    final long position = control.offer(heartbeat, 0, heartbeat.capacity());
                    if (position > 0)
                    {
                        nextHeartbeatNanos = nowNanos + intervalNanos;
                        work++;
                    }
                    else if (position == Publication.CLOSED)
                    {
                        lost("the control publication to " + link.peerName() + " was closed");
                    }
                }
                if (nowNanos - link.lastHeardNanos() > timeoutNanos)
                {
                    lost("no heartbeat from " + link.peerName() + " for " + timeoutMillis + " ms");
                }
            }
            return work;
        }

        @Override
        public void onFragment(final DirectBuffer buffer, final int offset, final int length, final Header frame)
        {
            header.wrap(buffer, offset);
            if (frame.sessionId() != replySessionId || MessageHeader.check(header, length) != MessageHeader.Verdict.OK)
            {
                ignoredMessages.incrementAndGet();
                return;
            }
            if (!link.isUp())
            {
                return;
            }
            link.heard(nowNanos);
            switch (header.templateId())
            {
                case WireProtocol.ACK ->
                {
                    ack.wrap(buffer, header.blockOffset());
                    device.onAck(ack.cookie(), ack.result());
                }
                case WireProtocol.HEARTBEAT, WireProtocol.HELLO_ACK ->
                {
                }
                case WireProtocol.BARRIER_DONE ->
                {
                    body.wrap(buffer, header.blockOffset());
                    if (body.id() == pendingCorrelation)
                    {
                        checkpointAnswer = new CheckpointAnswer(body.code(), body.epoch(), ControlFlyweight.getText(
                            buffer, header.blockOffset() + header.blockLength(), offset + length));
                        final Thread waiter = checkpointWaiter;
                        if (waiter != null)
                        {
                            LockSupport.unpark(waiter);
                        }
                    }
                }
                case WireProtocol.GOODBYE ->
                {
                    body.wrap(buffer, header.blockOffset());
                    final String text = ControlFlyweight.getText(buffer, header.blockOffset() + header.blockLength(),
                        offset + length);
                    link.gone(body.code() != 0, text, () -> device.fail(Errno.EIO));
                }
                default -> lost("protocol error: unexpected " + WireProtocol.templateName(header.templateId()) +
                    " from " + link.peerName());
            }
        }

        @Override
        public String roleName()
        {
            return ROLE;
        }
    }
}
