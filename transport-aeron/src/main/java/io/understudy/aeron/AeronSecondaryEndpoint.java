package io.understudy.aeron;

import io.aeron.Aeron;
import io.aeron.ControlledFragmentAssembler;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.Header;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.BufferPool;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.RefusalCode;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.ManyToOneConcurrentArrayQueue;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;

/**
 * The secondary's listening end of the Aeron links: subscribes to the data and control streams on its channel,
 * accepts one primary session at a time (its {@link LinkAcceptor} decides about each HELLO; a HELLO while a link is
 * up is refused as busy) and applies that session's requests to the sink, acknowledging each with the sink's
 * result. Messages of any other session, or of a link that ended, are counted and never applied: after a link
 * ended only a new HELLO, accepted again, lets requests through.
 * <p>
 * <b>Agent</b> ({@code aeron-secondary}, in the media's duty cycle): each duty cycle reads the clock once, turns sink
 * completions into ACKs (sink threads only put the finished slot on a queue), polls the data stream with a
 * controlled fragment assembler and the control stream, sends heartbeats and watches the primary's.
 * <p>
 * <b>Sink slots.</b> {@code sinkSlots} request slots, each with a part-sized buffer from one {@link BufferPool}, are
 * made up front; a WRITE's data is copied from the Aeron log into its slot (the log is only valid during the
 * callback) and the slot index is the sink cookie. No free slot, or a sink that refuses (back-pressure, e.g. held
 * by a checkpoint), makes the poll ABORT: the message stays in the log and is offered again, Aeron's flow control
 * stops the primary, and nothing is dropped. Heartbeats travel on the control stream, so they are still heard.
 * <p>
 * <b>Barrier.</b> BARRIER stops the data stream (later requests are held back) until every earlier request
 * completed and was acknowledged; then the listener's checkpoint runs on a thread of its own, and its answer goes
 * back as BARRIER_DONE.
 */
public final class AeronSecondaryEndpoint implements AutoCloseable
{
    private static final System.Logger LOG = System.getLogger("io.understudy.aeron");
    private static final int FRAGMENT_LIMIT = 32;
    private static final String ROLE = "aeron-secondary";
    private static final int MAX_REFUSALS_IN_FLIGHT = 4;
    private static final long OFFER_PARK_NANOS = TimeUnit.MICROSECONDS.toNanos(200);
    private static final long CLOSE_DRAIN_NANOS = TimeUnit.SECONDS.toNanos(5);

    private final Aeron aeron;
    private final AeronChannel channel;
    private final Subscription data;
    private final Subscription control;
    private final BlockDevice sink;
    private final LinkAcceptor acceptor;
    private final LongSupplier epoch;
    private final long handshakeTimeoutNanos;
    private final BufferPool buffers;
    private final SinkSlot[] slots;
    private final ManyToOneConcurrentArrayQueue<SinkSlot> completed;
    private final AeronMedia media;
    private final SecondaryAgent agent;
    /** The agent as the media's duty cycle runs it. */
    private Agent attached;
    private final AtomicInteger refusalsInFlight = new AtomicInteger();
    private final AtomicInteger linkIds = new AtomicInteger();
    private final AtomicLong applied = new AtomicLong();
    private final AtomicLong acksSent = new AtomicLong();
    private final AtomicLong ignoredMessages = new AtomicLong();
    private final AtomicLong sinkBackPressure = new AtomicLong();
    private final AtomicLong refusals = new AtomicLong();
    /** The current (or last) link; written by the agent, read by anyone. */
    private volatile SecondaryLink current;
    private volatile boolean closed;

    private AeronSecondaryEndpoint(
        final AeronMedia media, final AeronChannel channel, final BlockDevice sink, final LinkAcceptor acceptor,
        final LongSupplier epoch, final AeronLinkContext context)
    {
        this.media = media;
        this.aeron = media.aeron();
        this.channel = channel;
        this.sink = sink;
        this.acceptor = acceptor;
        this.epoch = epoch;
        this.handshakeTimeoutNanos = context.handshakeTimeoutNanos();
        this.buffers = new BufferPool(context.maxPartLength(), context.sinkSlots());
        this.slots = new SinkSlot[context.sinkSlots()];
        for (int i = 0; i < slots.length; i++)
        {
            slots[i] = new SinkSlot(i, buffers.buffer(i));
        }
        this.completed = new ManyToOneConcurrentArrayQueue<>(slots.length);
        Subscription dataSubscription = null;
        try
        {
            dataSubscription = aeron.addSubscription(channel.subscriptionChannel(), WireProtocol.DATA_STREAM_ID);
            this.control = aeron.addSubscription(channel.subscriptionChannel(), WireProtocol.CONTROL_STREAM_ID);
        }
        catch (final RuntimeException ex)
        {
            CloseHelper.quietClose(dataSubscription);
            buffers.close();
            throw ex;
        }
        this.data = dataSubscription;
        this.agent = new SecondaryAgent();
    }

    /**
     * Starts listening on {@code channel} ({@code aeron:udp?endpoint=HOST:PORT}: the address to bind; or
     * {@code aeron:ipc}).
     *
     * @param media    the Aeron client (and maybe driver) to use; not owned.
     * @param sink     where accepted requests are applied ({@code ReplicationSecondary.sink()}); not owned.
     * @param acceptor decides about every HELLO, and hears about each link that comes up (on the agent thread).
     * @param epoch    the secondary's epoch, sent in HELLO_ACK and heartbeats.
     * @throws IOException if Aeron refuses the channel (e.g. the port is in use).
     */
    public static AeronSecondaryEndpoint listen(
        final AeronMedia media, final AeronChannel channel, final BlockDevice sink, final LinkAcceptor acceptor,
        final LongSupplier epoch, final AeronLinkContext context) throws IOException
    {
        context.conclude();
        final AeronSecondaryEndpoint endpoint;
        try
        {
            endpoint = new AeronSecondaryEndpoint(media, channel.withFreePort(), sink, acceptor, epoch, context);
        }
        catch (final RuntimeException ex)
        {
            // Aeron's registration errors (a port in use, a bad channel) are the operator's to fix.
            throw new IOException("cannot listen on " + channel + ": " + ex.getMessage(), ex);
        }
        try
        {
            endpoint.attached = media.attach(endpoint.agent, endpoint::onAgentError);
        }
        catch (final RuntimeException ex)
        {
            CloseHelper.quietCloseAll(endpoint.data, endpoint.control);
            endpoint.buffers.close();
            throw new IOException("cannot listen on " + channel + ": " + ex.getMessage(), ex);
        }
        return endpoint;
    }

    /**
     * @return the channel a primary should publish to: as given, with a free port in place of a UDP port 0.
     */
    public String resolvedChannel()
    {
        return channel.toString();
    }

    /** @return the current or last link (null before the first), for status and tests. */
    public PeerControl link()
    {
        return current;
    }

    /** @return requests applied to the sink. */
    public long applied()
    {
        return applied.get();
    }

    /** @return ACKs sent. */
    public long acksSent()
    {
        return acksSent.get();
    }

    /** @return messages dropped: other sessions, ended links, foreign schema or version. */
    public long ignoredMessages()
    {
        return ignoredMessages.get();
    }

    /** @return times a request was held back because no slot was free or the sink refused it for now. */
    public long sinkBackPressure()
    {
        return sinkBackPressure.get();
    }

    /** @return HELLOs refused. */
    public long refusals()
    {
        return refusals.get();
    }

    /**
     * Closes the link (goodbye if up), stops the agent and the subscriptions, and waits (bounded) for requests
     * still running on the sink before it frees their buffers.
     */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        final SecondaryLink link = current;
        if (link != null)
        {
            link.close();
        }
        media.detach(attached);
        CloseHelper.quietCloseAll(data, control);
        final long deadline = System.nanoTime() + CLOSE_DRAIN_NANOS;
        int busy = agent.busy;
        while (busy > 0 && System.nanoTime() - deadline < 0)
        {
            if (completed.poll() != null)
            {
                busy--;
            }
            else
            {
                LockSupport.parkNanos(OFFER_PARK_NANOS);
            }
        }
        if (busy == 0)
        {
            buffers.close();
        }
        else
        {
            LOG.log(System.Logger.Level.WARNING, "Aeron secondary on {0}: {1} requests still on the sink at close; " +
                "their buffers are left to the garbage collector", channel, busy);
        }
    }

    private void onAgentError(final Throwable error)
    {
        LOG.log(System.Logger.Level.ERROR, "Aeron secondary on " + channel + ": agent error", error);
        final SecondaryLink link = current;
        if (link != null)
        {
            link.lost("the secondary's agent failed: " + error);
        }
    }

    /** Sends REFUSE on a publication of its own, from a short-lived thread: the agent never waits for it. */
    private void refuse(final String replyChannel, final int replyStreamId, final long generationId,
        final RefusalCode code, final String reason)
    {
        refusals.incrementAndGet();
        LOG.log(System.Logger.Level.INFO, "Aeron secondary on {0}: refused a primary ({1}): {2}", channel,
            code.label(), reason);
        if (refusalsInFlight.incrementAndGet() > MAX_REFUSALS_IN_FLIGHT)
        {
            refusalsInFlight.decrementAndGet();
            return;
        }
        Thread.ofPlatform().daemon(true).name("aeron-refuse").start(() ->
        {
            try (Publication publication = aeron.addExclusivePublication(replyChannel, replyStreamId))
            {
                final UnsafeBuffer buffer = new UnsafeBuffer(new byte[MessageHeader.LENGTH +
                    ControlFlyweight.BLOCK_LENGTH + 2 + WireProtocol.MAX_TEXT]);
                new MessageHeader().wrap(buffer, 0).encode(WireProtocol.REFUSE);
                new ControlFlyweight().wrap(buffer, MessageHeader.LENGTH).encode(generationId, epoch.getAsLong(), 0,
                    code.wireCode());
                final int length = MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH +
                    ControlFlyweight.putText(buffer, MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH, reason);
                final long deadline = System.nanoTime() + handshakeTimeoutNanos;
                while (publication.offer(buffer, 0, length) < 0 && System.nanoTime() - deadline < 0)
                {
                    LockSupport.parkNanos(OFFER_PARK_NANOS);
                }
                // Give the driver a moment to send it before the publication goes (linger covers UDP as well).
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(50));
            }
            catch (final RuntimeException ex)
            {
                LOG.log(System.Logger.Level.WARNING, "Aeron secondary on {0}: could not send a refusal to {1}: {2}",
                    channel, replyChannel, ex.toString());
            }
            finally
            {
                refusalsInFlight.decrementAndGet();
            }
        });
    }

    /** One request being applied to the sink: the primary's cookie, the link it came on, its data buffer. */
    private static final class SinkSlot
    {
        final int index;
        final MemorySegment buffer;
        final UnsafeBuffer view;
        long cookie;
        int linkId;
        /** Written by the sink's completion before the slot is queued; the queue publishes it to the agent. */
        int result;

        SinkSlot(final int index, final MemorySegment buffer)
        {
            this.index = index;
            this.buffer = buffer;
            this.view = new UnsafeBuffer(buffer.address(), (int)buffer.byteSize());
        }
    }

    /** Polls both streams, applies requests, acknowledges completions, runs barriers and heartbeats. */
    private final class SecondaryAgent implements Agent, IoCompletion
    {
        private final ControlledFragmentAssembler dataAssembler = new ControlledFragmentAssembler(this::onData);
        private final FragmentAssembler controlAssembler = new FragmentAssembler((FragmentHandler)this::onControl);
        private final MessageHeader header = new MessageHeader();
        private final RequestFlyweight request = new RequestFlyweight();
        private final ControlFlyweight body = new ControlFlyweight();
        private final HelloFlyweight helloBody = new HelloFlyweight();
        private final UnsafeBuffer ackBuffer = new UnsafeBuffer(new byte[AckFlyweight.MESSAGE_LENGTH]);
        private final AckFlyweight ack = new AckFlyweight();
        private final UnsafeBuffer controlBuffer = new UnsafeBuffer(new byte[MessageHeader.LENGTH +
            ControlFlyweight.BLOCK_LENGTH + 2 + WireProtocol.MAX_TEXT]);
        private final MessageHeader controlHeader = new MessageHeader();
        private final ControlFlyweight controlBody = new ControlFlyweight();
        private final int[] free = new int[slots.length];
        private final int[] backlog = new int[slots.length];
        private int freeCount;
        private int backlogHead;
        private int backlogCount;
        /** Slots taken (on the sink or waiting for their ACK); read by close() after the agent stopped. */
        int busy;
        private long nowNanos;
        private long nextHeartbeatNanos;
        private SecondaryLink barrierLink;
        private long barrierCorrelation;
        private long barrierEpoch;
        private long barrierTimeoutNanos;
        private boolean checkpointRunning;

        SecondaryAgent()
        {
            for (int i = 0; i < slots.length; i++)
            {
                free[freeCount++] = slots.length - 1 - i;
            }
            ack.wrap(ackBuffer, MessageHeader.LENGTH);
            new MessageHeader().wrap(ackBuffer, 0).encode(WireProtocol.ACK);
            controlHeader.wrap(controlBuffer, 0);
            controlBody.wrap(controlBuffer, MessageHeader.LENGTH);
        }

        @Override
        public String roleName()
        {
            return ROLE;
        }

        @Override
        public int doWork()
        {
            nowNanos = System.nanoTime();
            int work = collectCompletions();
            work += sendAcks();
            work += barrier();
            work += data.controlledPoll(dataAssembler, FRAGMENT_LIMIT);
            work += control.poll(controlAssembler, FRAGMENT_LIMIT);
            // Requests the sink completed inline during the poll are acknowledged in this cycle, so that the
            // driver sends their acks at the start of the next one rather than a cycle later.
            work += collectCompletions();
            work += sendAcks();
            work += heartbeat();
            return work;
        }

        /** Sink thread: the request in {@code cookie}'s slot finished. */
        @Override
        public void onComplete(final long cookie, final int result)
        {
            final SinkSlot slot = slots[(int)cookie];
            slot.result = result;
            // Cannot fail: the queue holds as many entries as there are slots.
            completed.offer(slot);
        }

        private int collectCompletions()
        {
            int count = 0;
            SinkSlot slot;
            while ((slot = completed.poll()) != null)
            {
                count++;
                final SecondaryLink link = current;
                if (link != null && link.id() == slot.linkId && link.isUp())
                {
                    backlog[(backlogHead + backlogCount++) % backlog.length] = slot.index;
                }
                else
                {
                    release(slot);
                }
            }
            return count;
        }

        private int sendAcks()
        {
            int sent = 0;
            final SecondaryLink link = current;
            while (backlogCount > 0)
            {
                final SinkSlot slot = slots[backlog[backlogHead]];
                if (link != null && link.id() == slot.linkId && link.isUp())
                {
                    ack.encode(slot.cookie, slot.result);
                    final long position = link.reply().offer(ackBuffer, 0, AckFlyweight.MESSAGE_LENGTH);
                    if (position < 0)
                    {
                        if (position == Publication.CLOSED)
                        {
                            link.lost("the reply publication to " + link.peerName() + " was closed");
                        }
                        break;
                    }
                    acksSent.incrementAndGet();
                    sent++;
                }
                backlogHead = (backlogHead + 1) % backlog.length;
                backlogCount--;
                release(slot);
            }
            return sent;
        }

        private void release(final SinkSlot slot)
        {
            free[freeCount++] = slot.index;
            busy--;
        }

        private int barrier()
        {
            final SecondaryLink link = barrierLink;
            if (link == null)
            {
                return 0;
            }
            if (link != current || !link.isUp())
            {
                barrierLink = null;
                checkpointRunning = false;
                return 1;
            }
            if (!checkpointRunning)
            {
                if (busy > 0)
                {
                    return 0;
                }
                checkpointRunning = true;
                link.startCheckpoint(nowNanos + barrierTimeoutNanos, barrierEpoch);
                return 1;
            }
            final PeerControl.CheckpointAnswer answer = link.takeCheckpointAnswer();
            if (answer == null)
            {
                return 0;
            }
            controlHeader.encode(WireProtocol.BARRIER_DONE);
            controlBody.encode(barrierCorrelation, answer.epoch(), 0, answer.result());
            final int length = MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH + ControlFlyweight.putText(
                controlBuffer, MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH, answer.reason() == null ? "" :
                answer.reason());
            final long deadline = nowNanos + handshakeTimeoutNanos;
            while (link.reply().offer(controlBuffer, 0, length) < 0 && link.isUp() &&
                System.nanoTime() - deadline < 0)
            {
                media.awaitProgress(OFFER_PARK_NANOS);
            }
            barrierLink = null;
            checkpointRunning = false;
            return 1;
        }

        private int heartbeat()
        {
            final SecondaryLink link = current;
            if (link == null || !link.isUp())
            {
                return 0;
            }
            int work = 0;
            if (nowNanos - nextHeartbeatNanos >= 0)
            {
                controlHeader.encode(WireProtocol.HEARTBEAT);
                controlBody.encode(link.generationId(), epoch.getAsLong(), 0, 0);
                final long position = link.reply().offer(controlBuffer, 0, MessageHeader.LENGTH +
                    ControlFlyweight.BLOCK_LENGTH);
                if (position > 0)
                {
                    nextHeartbeatNanos = nowNanos + TimeUnit.MILLISECONDS.toNanos(link.heartbeatIntervalMillis());
                    work++;
                }
                else if (position == Publication.CLOSED)
                {
                    link.lost("the reply publication to " + link.peerName() + " was closed");
                }
            }
            if (nowNanos - link.link().lastHeardNanos() > TimeUnit.MILLISECONDS.toNanos(link.heartbeatTimeoutMillis()))
            {
                link.lost("no heartbeat from " + link.peerName() + " for " + link.heartbeatTimeoutMillis() + " ms");
            }
            return work;
        }

        private ControlledFragmentHandler.Action onData(
            final DirectBuffer buffer, final int offset, final int length, final Header frame)
        {
            header.wrap(buffer, offset);
            final SecondaryLink link = current;
            if (link == null || frame.sessionId() != link.sessionId() || !link.isUp() ||
                MessageHeader.check(header, length) != MessageHeader.Verdict.OK)
            {
                ignoredMessages.incrementAndGet();
                return ControlledFragmentHandler.Action.CONTINUE;
            }
            link.link().heard(nowNanos);
            final int template = header.templateId();
            switch (template)
            {
                case WireProtocol.WRITE, WireProtocol.COW_DATA, WireProtocol.ZEROES, WireProtocol.DISCARD,
                     WireProtocol.FLUSH ->
                {
                    return apply(link, template, buffer, offset, length);
                }
                case WireProtocol.BARRIER ->
                {
                    if (barrierLink != null)
                    {
                        link.lost("protocol error: a BARRIER while another one runs");
                        return ControlledFragmentHandler.Action.CONTINUE;
                    }
                    body.wrap(buffer, header.blockOffset());
                    barrierLink = link;
                    barrierCorrelation = body.id();
                    barrierEpoch = body.epoch();
                    barrierTimeoutNanos = body.value();
                    checkpointRunning = false;
                    return ControlledFragmentHandler.Action.CONTINUE;
                }
                default ->
                {
                    link.lost("protocol error: unexpected " + WireProtocol.templateName(template) + " on the data " +
                        "stream");
                    return ControlledFragmentHandler.Action.CONTINUE;
                }
            }
        }

        private ControlledFragmentHandler.Action apply(
            final SecondaryLink link, final int template, final DirectBuffer buffer, final int offset,
            final int length)
        {
            if (barrierLink != null || freeCount == 0)
            {
                sinkBackPressure.incrementAndGet();
                return ControlledFragmentHandler.Action.ABORT;
            }
            request.wrap(buffer, header.blockOffset());
            final long diskOffset = request.diskOffset();
            final long requestLength = request.length();
            final int flags = request.flags();
            final SinkSlot slot = slots[free[--freeCount]];
            busy++;
            slot.cookie = request.cookie();
            slot.linkId = link.id();
            final boolean accepted;
            switch (template)
            {
                case WireProtocol.WRITE, WireProtocol.COW_DATA ->
                {
                    final int dataOffset = header.blockOffset() + header.blockLength();
                    if (requestLength < 0 || requestLength > slot.buffer.byteSize() ||
                        dataOffset + requestLength > offset + length ||
                        (template == WireProtocol.COW_DATA) != link.hello().shared())
                    {
                        // A part larger than our slots, or COW data on a non-shared link: answer, never apply.
                        onComplete(slot.index, -Errno.EINVAL);
                        return ControlledFragmentHandler.Action.CONTINUE;
                    }
                    buffer.getBytes(dataOffset, slot.view, 0, (int)requestLength);
                    accepted = sink.write(diskOffset, slot.buffer, (int)requestLength, flags, this, slot.index);
                }
                case WireProtocol.ZEROES -> accepted = sink.writeZeroes(diskOffset, requestLength, flags, this,
                    slot.index);
                case WireProtocol.DISCARD -> accepted = sink.discard(diskOffset, requestLength, this, slot.index);
                default -> accepted = sink.flush(this, slot.index);
            }
            if (!accepted)
            {
                free[freeCount++] = slot.index;
                busy--;
                sinkBackPressure.incrementAndGet();
                return ControlledFragmentHandler.Action.ABORT;
            }
            applied.incrementAndGet();
            return ControlledFragmentHandler.Action.CONTINUE;
        }

        private void onControl(final DirectBuffer buffer, final int offset, final int length, final Header frame)
        {
            header.wrap(buffer, offset);
            final MessageHeader.Verdict verdict = MessageHeader.check(header, length);
            if (length >= MessageHeader.LENGTH && header.templateId() == WireProtocol.HELLO &&
                header.schemaId() == WireProtocol.SCHEMA_ID)
            {
                onHello(verdict, buffer, offset, length, frame.sessionId());
                return;
            }
            final SecondaryLink link = current;
            if (verdict != MessageHeader.Verdict.OK || link == null || frame.sessionId() != link.sessionId() ||
                !link.isUp())
            {
                ignoredMessages.incrementAndGet();
                return;
            }
            link.link().heard(nowNanos);
            switch (header.templateId())
            {
                case WireProtocol.HEARTBEAT ->
                {
                }
                case WireProtocol.GOODBYE ->
                {
                    body.wrap(buffer, header.blockOffset());
                    link.gone(body.code() != 0, ControlFlyweight.getText(buffer,
                        header.blockOffset() + header.blockLength(), offset + length));
                }
                default -> link.lost("protocol error: unexpected " + WireProtocol.templateName(header.templateId()) +
                    " on the control stream");
            }
        }

        private void onHello(
            final MessageHeader.Verdict verdict, final DirectBuffer buffer, final int offset, final int length,
            final int sessionId)
        {
            final int blockOffset = header.blockOffset();
            if (header.blockLength() < HelloFlyweight.BLOCK_LENGTH || blockOffset + header.blockLength() > offset +
                length)
            {
                ignoredMessages.incrementAndGet();
                return;
            }
            helloBody.wrap(buffer, blockOffset);
            final String replyChannel = helloBody.replyChannel(header.blockLength(), offset + length);
            final int replyStreamId = helloBody.replyStreamId();
            final long generationId = helloBody.generationId();
            if (replyChannel.isEmpty())
            {
                ignoredMessages.incrementAndGet();
                return;
            }
            if (verdict == MessageHeader.Verdict.VERSION)
            {
                refuse(replyChannel, replyStreamId, generationId, RefusalCode.VERSION, "wire version " +
                    header.version() + " is not spoken here (version " + WireProtocol.VERSION + ")");
                return;
            }
            if (verdict != MessageHeader.Verdict.OK)
            {
                refuse(replyChannel, replyStreamId, generationId, RefusalCode.PROTOCOL, "malformed HELLO (" +
                    verdict + ")");
                return;
            }
            final Hello hello = helloBody.hello();
            final SecondaryLink link = current;
            final boolean linked = link != null && link.isUp();
            if (linked && link.sessionId() == sessionId && link.generationId() == generationId)
            {
                return; // the linked primary's HELLO again: it is answered already
            }
            final String heartbeatProblem = hello.heartbeatProblem();
            if (heartbeatProblem != null)
            {
                refuse(replyChannel, replyStreamId, generationId, RefusalCode.PROTOCOL, heartbeatProblem);
                return;
            }
            // The acceptor's reasons first (disk, cluster size, mode...), as over NBD; busy only if it has none.
            final LinkAcceptor.Refusal refusal = acceptor.check(hello);
            if (refusal != null)
            {
                refuse(replyChannel, replyStreamId, generationId, refusal.code(), refusal.reason());
                return;
            }
            if (linked)
            {
                refuse(replyChannel, replyStreamId, generationId, RefusalCode.BUSY, "a primary is linked already (" +
                    link.peerName() + ")");
                return;
            }
            accept(hello, sessionId, replyChannel, replyStreamId);
        }

        /** Opens the reply publication, answers HELLO_ACK and makes the link current (bounded by the handshake). */
        private void accept(final Hello hello, final int sessionId, final String replyChannel,
            final int replyStreamId)
        {
            final GuardedPublication reply;
            try
            {
                reply = new GuardedPublication(aeron.addExclusivePublication(replyChannel, replyStreamId));
            }
            catch (final RuntimeException ex)
            {
                LOG.log(System.Logger.Level.WARNING, "Aeron secondary on {0}: cannot answer on {1}: {2}", channel,
                    replyChannel, ex.toString());
                return;
            }
            final long deadline = System.nanoTime() + handshakeTimeoutNanos;
            controlHeader.encode(WireProtocol.HELLO_ACK);
            controlBody.encode(hello.generationId(), epoch.getAsLong(), 0, 0);
            while (reply.offer(controlBuffer, 0, MessageHeader.LENGTH + ControlFlyweight.BLOCK_LENGTH) < 0)
            {
                if (System.nanoTime() - deadline >= 0 || closed)
                {
                    LOG.log(System.Logger.Level.WARNING, "Aeron secondary on {0}: the primary at {1} did not " +
                        "connect its reply stream; HELLO dropped", channel, replyChannel);
                    reply.close();
                    return;
                }
                media.awaitProgress(OFFER_PARK_NANOS);
            }
            final String peerName = "session " + sessionId + " via " + replyChannel;
            final SecondaryLink link = new SecondaryLink(linkIds.incrementAndGet(), sessionId, hello, reply,
                acceptor.listenerFor(hello), epoch, peerName, media);
            final SecondaryLink previous = current;
            current = link;
            if (previous != null)
            {
                previous.close();
            }
            nowNanos = System.nanoTime();
            nextHeartbeatNanos = nowNanos;
            acceptor.onLink(link, hello);
        }
    }
}
