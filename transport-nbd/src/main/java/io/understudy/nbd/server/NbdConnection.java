package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

import static io.understudy.nbd.protocol.NbdProtocol.*;

/**
 * One client connection: the option haggling of the fixed newstyle handshake, then transmission.
 * <p>
 * <b>Requests.</b> The receiver thread reads the socket in bulk into {@link #rx} and parses every complete
 * request it holds before reading again. Each accepted request takes a preallocated {@link Slot}; the slot index
 * is the device cookie. Free slots are the set bits of {@link #freeMask} (at most 64 slots), so taking and
 * returning one is a single compare-and-set. WRITE payloads are copied out of {@link #rx} or, for the part not
 * yet received, read straight into the request's buffer from the {@link PayloadPool}.
 * <p>
 * <b>Replies.</b> A device completion records its result in the slot and sets the slot's bit in
 * {@link #completedMask}. The thread that wins {@link #sending} drains that mask and sends all the finished
 * replies, in completion order, with one gathering write on the (non-blocking, in transmission) socket: the
 * receiver before it reads again, which covers every request the device completed inline on it, and a device
 * thread right in its completion callback, which saves waking another thread. A thread that loses the race
 * leaves its reply to the winner, who re-checks the mask after it stops sending. A write that would block is
 * handed, with {@link #sending} still held, to the transmitter thread, the only one that ever waits for the
 * socket: device threads and the receiver never block on a client that does not read, and that client stalls
 * only itself.
 * <p>
 * <b>Budget.</b> When no slot is free or the connection holds {@code maxConnectionBytes} of payload, the receiver
 * stops reading until replies drain; the client then meets TCP back-pressure.
 */
final class NbdConnection implements IoCompletion, ExtentSink
{
    private static final System.Logger LOG = NbdServer.LOG;
    private static final VarHandle FREE_MASK;
    private static final VarHandle COMPLETED_MASK;
    private static final VarHandle SENDING;
    private static final VarHandle COMPLETIONS;

    static
    {
        try
        {
            final MethodHandles.Lookup lookup = MethodHandles.lookup();
            FREE_MASK = lookup.findVarHandle(NbdConnection.class, "freeMask", long.class);
            COMPLETED_MASK = lookup.findVarHandle(NbdConnection.class, "completedMask", long.class);
            SENDING = lookup.findVarHandle(NbdConnection.class, "sending", int.class);
            COMPLETIONS = lookup.findVarHandle(NbdConnection.class, "completions", long.class);
        }
        catch (final ReflectiveOperationException ex)
        {
            throw new ExceptionInInitializerError(ex);
        }
    }

    /** Receive buffer: large enough for dozens of queued 4 KiB writes per read system call. */
    private static final int RX_CAPACITY = 256 << 10;
    /** Per-slot room for reply headers: chunk headers, hole chunks, block status descriptors. */
    private static final int HEADER_AREA = 4096;
    private static final int TAIL_OFFSET = 2048;
    private static final int MAX_BLOCK_STATUS_EXTENTS = (TAIL_OFFSET - CHUNK_HEADER_LENGTH - 4) / 8;
    /**
     * Reads at least this long look for holes first (two lseek calls): below it reading the zeroes through the
     * page cache costs less than asking, and small random reads are the latency-critical case.
     */
    private static final int SPARSE_READ_MIN = 64 << 10;
    private static final long WAIT_NANOS = TimeUnit.MICROSECONDS.toNanos(20);
    private static final int CONTEXT_ID_BASE_ALLOCATION = 1;
    /** Longest wait for writability before the transmitter re-checks whether the connection is still open. */
    private static final long WRITABLE_POLL_MILLIS = 100;
    /** Selection callback: readiness is all we wait for, the keys need no processing. */
    private static final Consumer<SelectionKey> IGNORE_KEY = key -> { };

    private static final int PHASE_REPLY = 0;
    private static final int PHASE_FLUSH_AFTER = 1;

    private static final int REPLY_DEVICE = 0;
    private static final int REPLY_PRECOMPOSED = 1;

    private final NbdServer server;
    private final NbdServer.Context context;
    private final BlockDevice device;
    private final PayloadPool pool;
    private final NbdCounters counters;
    private final SocketChannel channel;
    private final String peer;
    private final ByteBuffer rx = ByteBuffer.allocateDirect(RX_CAPACITY);
    private final Slot[] slots;
    private final ByteBuffer[] iov;
    private final AtomicLong bufferedBytes = new AtomicLong();
    private final AtomicBoolean resourcesClosed = new AtomicBoolean();
    private final CountDownLatch drained = new CountDownLatch(1);
    private final Handshake handshake;

    /** Bit i set: slot i is free. CAS by the receiver (take), getAndBitwiseOr by the reply writer (return). */
    @SuppressWarnings("unused")
    private volatile long freeMask;
    /** Bit i set: slot i's request completed and its reply waits to be sent. */
    @SuppressWarnings("unused")
    private volatile long completedMask;

    /** Completions so far: numbers each one, so replies drained together go out in completion order. */
    @SuppressWarnings("unused")
    private volatile long completions;

    /** 1 while a connection thread drains {@link #completedMask} and writes replies. */
    @SuppressWarnings("unused")
    private volatile int sending;

    private Thread rxThread;
    /** Set by the handshake timer before it closes the socket; read by the receiver after the handshake. */
    private volatile boolean handshakeTimedOut;
    private Thread txThread;
    private volatile boolean txRunning = true;
    /** Set when the client can no longer receive replies; requests still complete, their replies are dropped. */
    private volatile boolean broken;
    /**
     * Set by a sender whose reply write would block: it keeps {@link #sending} held and passes it, with the
     * unwritten part of the gather list ({@link #pendingFirst} to {@link #pendingCount}) and the slots to release
     * after it ({@link #pendingRelease}), to the transmitter, the one thread allowed to wait for the socket.
     * The volatile write publishes those plain fields.
     */
    private volatile boolean handoff;
    private int pendingFirst;
    private int pendingCount;
    private long pendingRelease;
    /** Receiver's wait for readable data, once transmission runs with a non-blocking socket. */
    private Selector readSelector;
    /** Transmitter's wait for room in the socket's send buffer. */
    private Selector writeSelector;

    // Negotiated state, written by the receiver during the handshake, read by the reply writer afterwards
    // (published by the thread start of the transmitter and the slot hand-over).
    private boolean structuredReplies;
    private boolean blockStatusContext;
    private int transmissionFlags;

    /**
     * Receiver only: the slot of the request being parsed and submitted. If submission throws (a device bug), the
     * request never reached the device and nobody else will return the slot.
     */
    private Slot submitting;

    // Block-status and sparse-read scanning state (receiver thread only).
    private boolean scanForBlockStatus;
    private Slot scanSlot;
    private long scanLength;
    private long scanPosition;
    private int scanCount;
    private int scanMax;
    private int scanLastStatus;
    private long scanFirstData;
    private long scanDataEnd;

    NbdConnection(
        final NbdServer server, final NbdServer.Context context, final PayloadPool pool, final NbdCounters counters,
        final SocketChannel channel, final String peer)
    {
        this.server = server;
        this.context = context;
        this.device = context.device();
        this.pool = pool;
        this.counters = counters;
        this.channel = channel;
        this.peer = peer;
        final int slotCount = context.maxInFlight();
        this.slots = new Slot[slotCount];
        final ByteBuffer headers = ByteBuffer.allocateDirect(slotCount * HEADER_AREA);
        for (int i = 0; i < slotCount; i++)
        {
            slots[i] = new Slot(i, headers.slice(i * HEADER_AREA, HEADER_AREA));
        }
        this.iov = new ByteBuffer[slotCount * 3];
        FREE_MASK.setVolatile(this, slotCount == 64 ? -1L : (1L << slotCount) - 1);
        this.handshake = new Handshake(this, context, channel, rx, peer);
    }

    void start()
    {
        // Both fields are set before either thread starts: Thread.start publishes them to the new threads, and the
        // receiver's submissions publish them to device threads.
        txThread = Thread.ofPlatform().name("nbd-tx-" + peer).daemon(true).unstarted(this::transmitLoop);
        rxThread = Thread.ofPlatform().name("nbd-rx-" + peer).daemon(true).unstarted(this::receiveLoop);
        txThread.start();
        rxThread.start();
    }

    /** Stops reading requests (server shutdown): the receiver sees end-of-stream and drains. */
    void stopReading()
    {
        try
        {
            channel.shutdownInput();
        }
        catch (final IOException ex)
        {
            // Already closed or reset: the receiver is on its way out anyway.
        }
    }

    /**
     * Waits until every accepted request has been answered (or its reply dropped because the client left).
     *
     * @return false if that took longer than {@code timeoutNanos}.
     */
    boolean awaitDrained(final long timeoutNanos)
    {
        if (rxThread == null)
        {
            return true;
        }
        try
        {
            return drained.await(Math.max(0, timeoutNanos), TimeUnit.NANOSECONDS);
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** Gives up on a client that does not read its replies: they are dropped, their slots released. */
    void dropReplies()
    {
        broken = true;
        try
        {
            // A transmitter waiting for room notices the closed channel within one writability poll.
            channel.close();
        }
        catch (final IOException ex)
        {
            LOG.log(System.Logger.Level.DEBUG, "closing {0}: {1}", peer, ex.getMessage());
        }
    }

    String peer()
    {
        return peer;
    }

    /** Closes the socket and stops the transmitter; idempotent. Only after the drain, when the server closes. */
    void closeResources()
    {
        if (!resourcesClosed.compareAndSet(false, true))
        {
            return;
        }
        txRunning = false;
        if (txThread != null)
        {
            LockSupport.unpark(txThread);
        }
        try
        {
            channel.close();
        }
        catch (final IOException ex)
        {
            LOG.log(System.Logger.Level.DEBUG, "closing {0}: {1}", peer, ex.getMessage());
        }
        server.onConnectionClosed(this);
    }

    void negotiated(final boolean structuredReplies, final boolean blockStatusContext, final int transmissionFlags)
    {
        this.structuredReplies = structuredReplies;
        this.blockStatusContext = blockStatusContext;
        this.transmissionFlags = transmissionFlags;
    }

    boolean isServerClosing()
    {
        return server.isClosing();
    }

    void protocolViolation(final String what)
    {
        counters.onProtocolViolation();
        LOG.log(System.Logger.Level.WARNING, "NBD client {0} disconnected: {1}", peer, what);
    }

    /** Runs on the server's timer thread: closing the socket ends the receiver's blocking handshake read. */
    private void handshakeExpired()
    {
        handshakeTimedOut = true;
        protocolViolation("no complete handshake within " +
            TimeUnit.NANOSECONDS.toMillis(context.handshakeTimeoutNanos()) + " ms");
        closeResources();
    }

    private void receiveLoop()
    {
        final ScheduledFuture<?> deadline = server.armHandshakeDeadline(this::handshakeExpired);
        try
        {
            final boolean entered;
            try
            {
                entered = handshake.run();
            }
            finally
            {
                if (deadline != null)
                {
                    deadline.cancel(false);
                }
            }
            if (entered && !handshakeTimedOut)
            {
                // Non-blocking from here on, so that any thread can try to send replies without risking a wait;
                // the receiver waits for requests in a selector instead.
                channel.configureBlocking(false);
                readSelector = Selector.open();
                channel.register(readSelector, SelectionKey.OP_READ);
                transmission();
            }
        }
        catch (final ClosedChannelException ex)
        {
            LOG.log(System.Logger.Level.DEBUG, "NBD client {0}: connection closed", peer);
        }
        catch (final IOException ex)
        {
            LOG.log(System.Logger.Level.INFO, "NBD client {0} went away: {1}", peer, ex.getMessage());
        }
        catch (final RuntimeException | Error ex)
        {
            context.errorHandler().onError(ex);
        }
        finally
        {
            finishReceiving();
        }
    }

    /** Drains the requests in flight and closes, whatever went wrong: server shutdown waits for this. */
    private void finishReceiving()
    {
        try
        {
            final Slot abandoned = submitting;
            if (abandoned != null && ((long)COMPLETED_MASK.getVolatile(this) & (1L << abandoned.index)) == 0
                && ((long)FREE_MASK.getVolatile(this) & (1L << abandoned.index)) == 0)
            {
                releaseSlots(1L << abandoned.index);
            }
            submitting = null;
            drainInFlight();
        }
        catch (final RuntimeException | Error ex)
        {
            context.errorHandler().onError(ex);
        }
        finally
        {
            closeQuietly(readSelector);
            drained.countDown();
            if (!server.isClosing())
            {
                closeResources();
            }
        }
    }

    private void transmitLoop()
    {
        while (txRunning)
        {
            try
            {
                if (handoff)
                {
                    handoff = false;
                    finishHandoff();
                }
                else if ((long)COMPLETED_MASK.getVolatile(this) == 0 || !sendReplies(true))
                {
                    // Woken by a hand-off, by a completion on a device thread that could not send, or by close.
                    // If another thread is sending, it drains the mask again when it stops: nothing to do here.
                    LockSupport.park(this);
                }
            }
            catch (final RuntimeException | Error ex)
            {
                context.errorHandler().onError(ex);
                broken = true;
            }
        }
        closeQuietly(writeSelector);
    }

    /** Transmitter: completes a write another sender could not finish, then carries on sending as the owner. */
    private void finishHandoff()
    {
        try
        {
            writeOut(pendingFirst, pendingCount, true);
            releaseSlots(pendingRelease);
            drainCompleted(true);
        }
        finally
        {
            SENDING.setVolatile(this, 0);
        }
        sendReplies(true);
    }

    /** Waits until every slot is free: their device requests completed and their replies are sent or dropped. */
    private void drainInFlight()
    {
        final long all = slots.length == 64 ? -1L : (1L << slots.length) - 1;
        while ((long)FREE_MASK.getVolatile(this) != all)
        {
            sendReplies();
            if ((long)FREE_MASK.getVolatile(this) != all)
            {
                LockSupport.parkNanos(WAIT_NANOS);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------------
    // Transmission: parsing and submission (receiver thread)
    // ------------------------------------------------------------------------------------------------------

    private void transmission() throws IOException
    {
        rx.clear().limit(0);
        while (true)
        {
            submitting = null;
            if (!ensure(REQUEST_HEADER_LENGTH))
            {
                if (rx.hasRemaining())
                {
                    protocolViolation("truncated request header (" + rx.remaining() + " of 28 bytes)");
                }
                else if (!server.isClosing())
                {
                    LOG.log(System.Logger.Level.DEBUG, "NBD client {0} closed the connection", peer);
                }
                return;
            }
            final int magic = rx.getInt();
            final int flags = rx.getShort() & 0xFFFF;
            final int type = rx.getShort() & 0xFFFF;
            final long cookie = rx.getLong();
            final long offset = rx.getLong();
            final long length = rx.getInt() & 0xFFFF_FFFFL;
            if (magic != REQUEST_MAGIC)
            {
                protocolViolation(String.format("bad request magic 0x%08x", magic));
                return;
            }
            counters.onRequest(type, length);
            if (type == CMD_DISC)
            {
                LOG.log(System.Logger.Level.DEBUG, "NBD client {0} disconnects (NBD_CMD_DISC)", peer);
                return;
            }
            if (type == CMD_WRITE && length > MAX_PAYLOAD)
            {
                protocolViolation("WRITE payload of " + length + " bytes exceeds the 32 MiB maximum");
                return;
            }
            final Reason invalid = validate(type, flags, offset, length);
            if (invalid != null)
            {
                if (type == CMD_WRITE && !skip(length))
                {
                    protocolViolation("truncated WRITE payload");
                    return;
                }
                final Slot slot = acquireSlot(0);
                slot.set(type, cookie, offset, (int)Math.min(length, Integer.MAX_VALUE));
                composeError(slot, invalid.errno, invalid.message);
                onComplete(slot.index, 0);
                continue;
            }
            switch (type)
            {
                case CMD_READ -> submitRead(flags, cookie, offset, (int)length);
                case CMD_WRITE ->
                {
                    if (!receiveWrite(flags, cookie, offset, (int)length))
                    {
                        protocolViolation("truncated WRITE payload");
                        return;
                    }
                }
                case CMD_FLUSH ->
                {
                    final Slot slot = acquireSlot(0);
                    slot.set(type, cookie, offset, 0);
                    while (!device.flush(this, slot.index))
                    {
                        waitForProgress();
                    }
                }
                case CMD_TRIM ->
                {
                    final Slot slot = acquireSlot(0);
                    slot.set(type, cookie, offset, 0);
                    slot.phase = (flags & CMD_FLAG_FUA) != 0 ? PHASE_FLUSH_AFTER : PHASE_REPLY;
                    if (length == 0)
                    {
                        onComplete(slot.index, 0);
                    }
                    else
                    {
                        while (!device.discard(offset, length, this, slot.index))
                        {
                            waitForProgress();
                        }
                    }
                }
                case CMD_WRITE_ZEROES ->
                {
                    final Slot slot = acquireSlot(0);
                    slot.set(type, cookie, offset, 0);
                    final int deviceFlags = ((flags & CMD_FLAG_FUA) != 0 ? BlockDevice.FLAG_FUA : 0)
                        | ((flags & CMD_FLAG_NO_HOLE) != 0 ? BlockDevice.FLAG_NO_HOLE : 0)
                        | ((flags & CMD_FLAG_FAST_ZERO) != 0 ? BlockDevice.FLAG_FAST_ZERO : 0);
                    if (length == 0)
                    {
                        onComplete(slot.index, 0);
                    }
                    else
                    {
                        while (!device.writeZeroes(offset, length, deviceFlags, this, slot.index))
                        {
                            waitForProgress();
                        }
                    }
                }
                case CMD_CACHE ->
                {
                    // A prefetch hint with no effect on semantics: the range was validated, nothing to do.
                    final Slot slot = acquireSlot(0);
                    slot.set(type, cookie, offset, 0);
                    onComplete(slot.index, 0);
                }
                case CMD_BLOCK_STATUS -> blockStatus(flags, cookie, offset, length);
                default -> throw new IllegalStateException("validated command " + type);
            }
        }
    }

    /** @return null if the request may be executed, else why it is refused. */
    private Reason validate(final int type, final int flags, final long offset, final long length)
    {
        final int allowedFlags = switch (type)
        {
            case CMD_READ -> CMD_FLAG_FUA | ((transmissionFlags & TFLAG_SEND_DF) != 0 ? CMD_FLAG_DF : 0);
            case CMD_WRITE, CMD_FLUSH, CMD_TRIM, CMD_CACHE -> CMD_FLAG_FUA;
            case CMD_WRITE_ZEROES -> CMD_FLAG_FUA | CMD_FLAG_NO_HOLE
                | ((transmissionFlags & TFLAG_SEND_FAST_ZERO) != 0 ? CMD_FLAG_FAST_ZERO : 0);
            case CMD_BLOCK_STATUS -> CMD_FLAG_FUA | CMD_FLAG_REQ_ONE;
            default -> -1;
        };
        if (allowedFlags < 0)
        {
            return Reason.UNKNOWN_COMMAND;
        }
        if ((flags & ~allowedFlags) != 0)
        {
            return Reason.BAD_FLAGS;
        }
        final boolean writeType = type == CMD_WRITE || type == CMD_TRIM || type == CMD_WRITE_ZEROES;
        if (writeType && context.readOnly())
        {
            return Reason.READ_ONLY;
        }
        if (type == CMD_FLUSH)
        {
            return offset != 0 || length != 0 ? Reason.FLUSH_RANGE : null;
        }
        if (type == CMD_BLOCK_STATUS && !blockStatusContext)
        {
            return Reason.NO_CONTEXT;
        }
        // Offsets are unsigned 64-bit: a negative long is >= 2^63, beyond any export. Comparing the length with
        // the room left after the offset cannot wrap around.
        final long size = device.size();
        if (offset < 0 || offset > size || length > size - offset)
        {
            return type == CMD_WRITE || type == CMD_WRITE_ZEROES ? Reason.NO_SPACE : Reason.OUT_OF_RANGE;
        }
        final int minimum = context.minimumBlockSize();
        if (minimum > 1 && ((offset | length) & (minimum - 1)) != 0)
        {
            return Reason.MISALIGNED;
        }
        if (type == CMD_READ && length > MAX_PAYLOAD)
        {
            return Reason.TOO_LARGE;
        }
        if (type == CMD_BLOCK_STATUS && length == 0)
        {
            return Reason.ZERO_LENGTH;
        }
        return null;
    }

    private void submitRead(final int flags, final long cookie, final long offset, final int length)
        throws IOException
    {
        final Slot slot = acquireSlot(length);
        slot.set(CMD_READ, cookie, offset, length);
        slot.dataStart = 0;
        slot.dataEnd = length;
        if (length == 0)
        {
            onComplete(slot.index, 0);
            return;
        }
        if (structuredReplies && (flags & CMD_FLAG_DF) == 0 && length >= SPARSE_READ_MIN)
        {
            findDataSpan(slot, offset, length);
            if (slot.dataStart == slot.dataEnd)
            {
                onComplete(slot.index, 0);
                return;
            }
        }
        final int dataLength = slot.dataEnd - slot.dataStart;
        while (!device.read(offset + slot.dataStart, pool.segment(slot.handle), dataLength, this, slot.index))
        {
            waitForProgress();
        }
    }

    /**
     * Narrows a read to the span from its first to its last byte that does not read as zeroes, so that holes at
     * either end are sent as OFFSET_HOLE chunks without reading them. Holes inside the span are read.
     */
    private void findDataSpan(final Slot slot, final long offset, final int length)
    {
        scanForBlockStatus = false;
        scanLength = length;
        scanPosition = 0;
        scanFirstData = -1;
        scanDataEnd = 0;
        final long described = device.blockStatus(offset, length, this);
        if (described < 0)
        {
            return;
        }
        if (described < length)
        {
            // The device stopped early: whatever it did not describe counts as data.
            if (scanFirstData < 0)
            {
                scanFirstData = described;
            }
            scanDataEnd = length;
        }
        if (scanFirstData < 0)
        {
            slot.dataStart = 0;
            slot.dataEnd = 0;
            return;
        }
        final int alignment = context.minimumBlockSize();
        slot.dataStart = (int)(scanFirstData & -alignment);
        slot.dataEnd = (int)Math.min(length, (scanDataEnd + alignment - 1) & -alignment);
    }

    private void blockStatus(final int flags, final long cookie, final long offset, final long length)
        throws IOException
    {
        final Slot slot = acquireSlot(0);
        slot.set(CMD_BLOCK_STATUS, cookie, offset, 0);
        scanForBlockStatus = true;
        slot.head.clear();
        scanSlot = slot;
        scanLength = length;
        scanPosition = 0;
        scanCount = 0;
        scanMax = (flags & CMD_FLAG_REQ_ONE) != 0 ? 1 : MAX_BLOCK_STATUS_EXTENTS;
        final long described = device.blockStatus(offset, length, this);
        scanSlot = null;
        if (described < 0)
        {
            composeError(slot, nbdError((int)-described), Reason.DEVICE.message);
        }
        else if (scanCount == 0)
        {
            composeError(slot, NBD_EIO, Reason.DEVICE.message);
        }
        else
        {
            final ByteBuffer head = slot.head;
            final int payload = 4 + 8 * scanCount;
            head.putInt(0, STRUCTURED_REPLY_MAGIC)
                .putShort(4, (short)REPLY_FLAG_DONE)
                .putShort(6, (short)REPLY_TYPE_BLOCK_STATUS)
                .putLong(8, cookie)
                .putInt(16, payload)
                .putInt(20, CONTEXT_ID_BASE_ALLOCATION);
            slot.reply = REPLY_PRECOMPOSED;
            slot.headLength = CHUNK_HEADER_LENGTH + payload;
        }
        onComplete(slot.index, 0);
    }

    @Override
    public boolean onExtent(final long length, final int flags)
    {
        final long remaining = scanLength - scanPosition;
        if (remaining <= 0)
        {
            return false;
        }
        final long extent = Math.min(length, remaining);
        final int status = flags & (STATE_HOLE | STATE_ZERO);
        if (scanForBlockStatus)
        {
            final ByteBuffer head = scanSlot.head;
            if (scanCount > 0 && status == scanLastStatus)
            {
                final int at = CHUNK_HEADER_LENGTH + 4 + 8 * (scanCount - 1);
                head.putInt(at, (int)((head.getInt(at) & 0xFFFF_FFFFL) + extent));
            }
            else
            {
                if (scanCount == scanMax)
                {
                    return false;
                }
                final int at = CHUNK_HEADER_LENGTH + 4 + 8 * scanCount;
                head.putInt(at, (int)extent).putInt(at + 4, status);
                scanLastStatus = status;
                scanCount++;
            }
        }
        else if ((status & STATE_ZERO) == 0)
        {
            if (scanFirstData < 0)
            {
                scanFirstData = scanPosition;
            }
            scanDataEnd = scanPosition + extent;
        }
        scanPosition += extent;
        return scanPosition < scanLength;
    }

    private boolean receiveWrite(final int flags, final long cookie, final long offset, final int length)
        throws IOException
    {
        final Slot slot = acquireSlot(length);
        slot.set(CMD_WRITE, cookie, offset, length);
        if (length > 0)
        {
            final ByteBuffer payload = pool.view(slot.handle);
            payload.clear().limit(length);
            final int buffered = Math.min(rx.remaining(), length);
            payload.put(0, rx, rx.position(), buffered).position(buffered);
            rx.position(rx.position() + buffered);
            while (payload.hasRemaining())
            {
                if (receive(payload) < 0)
                {
                    releaseUnsubmitted(slot);
                    return false;
                }
            }
        }
        if (length == 0)
        {
            onComplete(slot.index, 0);
            return true;
        }
        final int deviceFlags = (flags & CMD_FLAG_FUA) != 0 ? BlockDevice.FLAG_FUA : 0;
        while (!device.write(offset, pool.segment(slot.handle), length, deviceFlags, this, slot.index))
        {
            waitForProgress();
        }
        return true;
    }

    /**
     * Reads what the socket holds into {@code buffer}, sending the replies that are ready first; waits in the
     * selector when nothing has arrived.
     *
     * @return bytes read (> 0), or -1 at end of stream.
     */
    private int receive(final ByteBuffer buffer) throws IOException
    {
        sendReplies();
        int read;
        while ((read = channel.read(buffer)) == 0)
        {
            sendReplies();
            readSelector.select(IGNORE_KEY, 0);
        }
        return read;
    }

    /** Makes at least {@code count} bytes readable in {@link #rx}; false at end of stream. */
    private boolean ensure(final int count) throws IOException
    {
        if (rx.remaining() >= count)
        {
            return true;
        }
        rx.compact();
        while (rx.position() < count)
        {
            if (receive(rx) < 0)
            {
                rx.flip();
                return false;
            }
        }
        rx.flip();
        return true;
    }

    /** Consumes and discards {@code count} payload bytes of a refused WRITE; false at end of stream. */
    private boolean skip(final long count) throws IOException
    {
        long left = count;
        while (true)
        {
            final int consumed = (int)Math.min(left, rx.remaining());
            rx.position(rx.position() + consumed);
            left -= consumed;
            if (left == 0)
            {
                return true;
            }
            rx.clear();
            final int read = receive(rx);
            rx.flip();
            if (read < 0)
            {
                return false;
            }
        }
    }

    /** Takes a free slot, and a payload buffer if {@code payloadLength > 0}, waiting while the budget is spent. */
    private Slot acquireSlot(final int payloadLength)
    {
        int index;
        while (true)
        {
            final long free = (long)FREE_MASK.getVolatile(this);
            if (free == 0)
            {
                waitForProgress();
                continue;
            }
            index = Long.numberOfTrailingZeros(free);
            // Volatile CAS: acquires the slot fields the reply writer released with its getAndBitwiseOr.
            if (FREE_MASK.compareAndSet(this, free, free & ~(1L << index)))
            {
                break;
            }
        }
        final Slot slot = slots[index];
        submitting = slot;
        if (payloadLength > 0)
        {
            int handle;
            while (true)
            {
                final long held = bufferedBytes.get();
                if (held == 0 || held + payloadLength <= context.maxConnectionBytes())
                {
                    handle = pool.acquire(payloadLength);
                    if (handle != PayloadPool.NONE)
                    {
                        break;
                    }
                }
                waitForProgress();
            }
            slot.handle = handle;
            bufferedBytes.getAndAdd(PayloadPool.capacity(handle));
        }
        counters.onInFlight(1);
        return slot;
    }

    private void releaseUnsubmitted(final Slot slot)
    {
        releaseSlots(1L << slot.index);
    }

    /** Sends the replies that are ready, then waits briefly: some slot, buffer or device queue is exhausted. */
    private void waitForProgress()
    {
        counters.onBackPressureWait();
        sendReplies();
        LockSupport.parkNanos(WAIT_NANOS);
    }

    // ------------------------------------------------------------------------------------------------------
    // Completions and replies (any thread / connection threads)
    // ------------------------------------------------------------------------------------------------------

    @Override
    public void onComplete(final long cookie, final int result)
    {
        final Slot slot = slots[(int)cookie];
        slot.result = result;
        // Atomic increment, so a completion that happens before another (e.g. its device submits an overlapping
        // write only after this callback) gets the smaller number; a plain field like the result.
        slot.completedAt = (long)COMPLETIONS.getAndAdd(this, 1L);
        // Volatile read-modify-write: publishes the result and the number to the thread that drains the mask.
        COMPLETED_MASK.getAndBitwiseOr(this, 1L << cookie);
        if (Thread.currentThread() != rxThread)
        {
            // A device thread sends at once (non-blocking) rather than waking another thread to do it; the
            // receiver's own completions are batched and sent before it next waits for requests.
            try
            {
                sendReplies(false);
            }
            catch (final RuntimeException ex)
            {
                // Never let our failure escape into the device's completion thread.
                context.errorHandler().onError(ex);
                broken = true;
                stopReading();
            }
        }
    }

    /**
     * Sends every reply that is ready, unless another thread is sending: that thread re-checks the mask after it
     * stops sending, so replies are never stranded, and nobody waits for a lock (or allocates, as a contended lock
     * would). The receiver and device threads never wait for the socket either: if a write would block they hand
     * the rest to the transmitter ({@code mayWait} false).
     *
     * @return false if another thread was sending or the rest was handed to the transmitter.
     */
    private boolean sendReplies(final boolean mayWait)
    {
        while ((long)COMPLETED_MASK.getVolatile(this) != 0)
        {
            // Volatile CAS / volatile store: the sender's view of the slots is ordered with the previous sender's.
            if (!SENDING.compareAndSet(this, 0, 1))
            {
                return false;
            }
            boolean handedOff = false;
            try
            {
                handedOff = !drainCompleted(mayWait);
            }
            finally
            {
                if (!handedOff)
                {
                    SENDING.setVolatile(this, 0);
                }
            }
            if (handedOff)
            {
                handoff = true;
                LockSupport.unpark(txThread);
                return false;
            }
        }
        return true;
    }

    private boolean sendReplies()
    {
        return sendReplies(false);
    }

    /** @return false if a write would block and {@code mayWait} is false: the rest is pending for a hand-off. */
    private boolean drainCompleted(final boolean mayWait)
    {
        long done;
        while ((done = (long)COMPLETED_MASK.getAndSet(this, 0L)) != 0)
        {
            int count = 0;
            long sent = 0;
            while (done != 0)
            {
                final int index = earliest(done);
                done &= ~(1L << index);
                final Slot slot = slots[index];
                if (slot.phase == PHASE_FLUSH_AFTER && slot.result >= 0)
                {
                    // TRIM with FUA: make the discard durable before replying.
                    slot.phase = PHASE_REPLY;
                    if (!device.flush(this, index))
                    {
                        slot.phase = PHASE_FLUSH_AFTER;
                        COMPLETED_MASK.getAndBitwiseOr(this, 1L << index);
                    }
                    continue;
                }
                try
                {
                    count = compose(slot, count);
                }
                catch (final RuntimeException ex)
                {
                    // A bug, not a client error: this reply is lost, so the stream cannot continue. Drop the
                    // client but keep releasing slots so that the connection still drains and closes.
                    context.errorHandler().onError(ex);
                    broken = true;
                    stopReading();
                }
                sent |= 1L << index;
            }
            if (!writeOut(0, count, mayWait))
            {
                pendingRelease = sent;
                return false;
            }
            releaseSlots(sent);
        }
        return true;
    }

    /**
     * @return the slot among {@code mask} whose request completed first. Replies go out in completion order, which
     * is the order a client sees: of two overlapping writes, the device keeps the one that completed last, and the
     * client must see that one answered last (AX-11). A scan of at most 64 slots, usually of one or two.
     */
    private int earliest(final long mask)
    {
        long remaining = mask;
        int earliest = Long.numberOfTrailingZeros(remaining);
        remaining &= remaining - 1;
        while (remaining != 0)
        {
            final int index = Long.numberOfTrailingZeros(remaining);
            remaining &= remaining - 1;
            if (slots[index].completedAt - slots[earliest].completedAt < 0)
            {
                earliest = index;
            }
        }
        return earliest;
    }

    /** Adds a slot's reply to the gather list; returns the new entry count. */
    private int compose(final Slot slot, final int count)
    {
        int entries = count;
        final ByteBuffer head = slot.head.clear();
        if (slot.reply == REPLY_PRECOMPOSED)
        {
            iov[entries++] = head.limit(slot.headLength).position(0);
            return entries;
        }
        final int result = slot.result;
        if (slot.type == CMD_READ && result >= 0)
        {
            if (result != slot.dataEnd - slot.dataStart)
            {
                composeError(slot, NBD_EIO, Reason.SHORT_READ.message);
                iov[entries++] = head.limit(slot.headLength).position(0);
                return entries;
            }
            return composeRead(slot, entries);
        }
        if (result < 0)
        {
            composeError(slot, nbdError(-result), Reason.DEVICE.message);
            iov[entries++] = head.limit(slot.headLength).position(0);
            return entries;
        }
        head.putInt(0, SIMPLE_REPLY_MAGIC).putInt(4, 0).putLong(8, slot.cookie);
        iov[entries++] = head.limit(SIMPLE_REPLY_LENGTH).position(0);
        return entries;
    }

    private int composeRead(final Slot slot, final int count)
    {
        int entries = count;
        final ByteBuffer head = slot.head;
        final int length = slot.length;
        if (!structuredReplies)
        {
            head.putInt(0, SIMPLE_REPLY_MAGIC).putInt(4, 0).putLong(8, slot.cookie);
            iov[entries++] = head.limit(SIMPLE_REPLY_LENGTH).position(0);
            if (length > 0)
            {
                iov[entries++] = pool.view(slot.handle).limit(length).position(0);
            }
            return entries;
        }
        if (length == 0)
        {
            putChunkHeader(head, 0, REPLY_FLAG_DONE, REPLY_TYPE_NONE, slot.cookie, 0);
            iov[entries++] = head.limit(CHUNK_HEADER_LENGTH).position(0);
            return entries;
        }
        int at = 0;
        final int dataStart = slot.dataStart;
        final int dataEnd = slot.dataEnd;
        if (dataStart > 0 || dataEnd == dataStart)
        {
            final int holeEnd = dataEnd == dataStart ? length : dataStart;
            at = putHoleChunk(head, at, holeEnd == length, slot.cookie, slot.offset, holeEnd);
        }
        if (dataEnd > dataStart)
        {
            final int dataLength = dataEnd - dataStart;
            putChunkHeader(head, at, dataEnd == length ? REPLY_FLAG_DONE : 0, REPLY_TYPE_OFFSET_DATA, slot.cookie,
                8 + dataLength);
            head.putLong(at + CHUNK_HEADER_LENGTH, slot.offset + dataStart);
            at += CHUNK_HEADER_LENGTH + 8;
            iov[entries++] = head.limit(at).position(0);
            iov[entries++] = pool.view(slot.handle).limit(dataLength).position(0);
            if (dataEnd < length)
            {
                final ByteBuffer tail = slot.tail.clear();
                final int tailLength = putHoleChunk(
                    tail, 0, true, slot.cookie, slot.offset + dataEnd, length - dataEnd);
                iov[entries++] = tail.limit(tailLength).position(0);
            }
        }
        else
        {
            iov[entries++] = head.limit(at).position(0);
        }
        return entries;
    }

    private static int putHoleChunk(
        final ByteBuffer buffer, final int at, final boolean done, final long cookie, final long offset,
        final int length)
    {
        putChunkHeader(buffer, at, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE_OFFSET_HOLE, cookie, 12);
        buffer.putLong(at + CHUNK_HEADER_LENGTH, offset).putInt(at + CHUNK_HEADER_LENGTH + 8, length);
        return at + CHUNK_HEADER_LENGTH + 12;
    }

    private static void putChunkHeader(
        final ByteBuffer buffer, final int at, final int flags, final int type, final long cookie, final int length)
    {
        buffer.putInt(at, STRUCTURED_REPLY_MAGIC)
            .putShort(at + 4, (short)flags)
            .putShort(at + 6, (short)type)
            .putLong(at + 8, cookie)
            .putInt(at + 16, length);
    }

    /** Writes an error reply into the slot's header area: a structured ERROR chunk when negotiated. */
    private void composeError(final Slot slot, final int error, final byte[] message)
    {
        counters.onErrorReply();
        final ByteBuffer head = slot.head.clear();
        if (structuredReplies)
        {
            putChunkHeader(head, 0, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, slot.cookie, 6 + message.length);
            head.putInt(CHUNK_HEADER_LENGTH, error).putShort(CHUNK_HEADER_LENGTH + 4, (short)message.length)
                .put(CHUNK_HEADER_LENGTH + 6, message);
            slot.headLength = CHUNK_HEADER_LENGTH + 6 + message.length;
        }
        else
        {
            head.putInt(0, SIMPLE_REPLY_MAGIC).putInt(4, error).putLong(8, slot.cookie);
            slot.headLength = SIMPLE_REPLY_LENGTH;
        }
        slot.reply = REPLY_PRECOMPOSED;
    }

    /**
     * Writes gather-list entries {@code [first, count)}; when the socket is full, waits for room if allowed, else
     * records where it stopped and returns false. A failed client marks the connection broken: its replies are
     * dropped (the requests still complete, and their slots are released).
     */
    private boolean writeOut(final int first, final int count, final boolean mayWait)
    {
        int next = first;
        try
        {
            while (next < count && !broken)
            {
                final long written = channel.write(iov, next, count - next);
                while (next < count && !iov[next].hasRemaining())
                {
                    next++;
                }
                if (written == 0 && next < count)
                {
                    if (!mayWait)
                    {
                        pendingFirst = next;
                        pendingCount = count;
                        return false;
                    }
                    awaitWritable();
                }
            }
        }
        catch (final IOException ex)
        {
            broken = true;
            LOG.log(System.Logger.Level.INFO, "NBD client {0} stopped receiving replies: {1}", peer, ex.getMessage());
            stopReading();
        }
        for (int i = 0; i < count; i++)
        {
            iov[i] = null;
        }
        return true;
    }

    /** Transmitter only: waits until the socket can take more, polling so that a closed connection is noticed. */
    private void awaitWritable() throws IOException
    {
        if (writeSelector == null)
        {
            writeSelector = Selector.open();
            channel.register(writeSelector, SelectionKey.OP_WRITE);
        }
        writeSelector.select(IGNORE_KEY, WRITABLE_POLL_MILLIS);
        if (!channel.isOpen())
        {
            throw new ClosedChannelException();
        }
    }

    private static void closeQuietly(final Selector selector)
    {
        if (selector != null)
        {
            try
            {
                selector.close();
            }
            catch (final IOException ex)
            {
                LOG.log(System.Logger.Level.DEBUG, "closing selector: {0}", ex.getMessage());
            }
        }
    }

    private void releaseSlots(final long mask)
    {
        long remaining = mask;
        int released = 0;
        while (remaining != 0)
        {
            final Slot slot = slots[Long.numberOfTrailingZeros(remaining)];
            remaining &= remaining - 1;
            if (slot.handle != PayloadPool.NONE)
            {
                bufferedBytes.getAndAdd(-PayloadPool.capacity(slot.handle));
                pool.release(slot.handle);
                slot.handle = PayloadPool.NONE;
            }
            slot.reply = REPLY_DEVICE;
            slot.phase = PHASE_REPLY;
            released++;
        }
        counters.onInFlight(-released);
        // Volatile read-modify-write: the receiver's CAS that takes a slot sees the slot reset above.
        FREE_MASK.getAndBitwiseOr(this, mask);
    }

    /** A request slot: the request's fields, its payload buffer and room for its reply headers. */
    private static final class Slot
    {
        final int index;
        /** Header area bytes [0, 2048): reply header, leading hole chunk, data chunk header, status descriptors. */
        final ByteBuffer head;
        /** Header area bytes [2048, 4096): the trailing hole chunk of a sparse read. */
        final ByteBuffer tail;
        int type;
        long cookie;
        long offset;
        int length;
        int handle = PayloadPool.NONE;
        int dataStart;
        int dataEnd;
        int result;
        /** Number of the completion (see {@link #completions}), written with the result. */
        long completedAt;
        int phase;
        int reply;
        int headLength;

        Slot(final int index, final ByteBuffer area)
        {
            this.index = index;
            this.head = area.slice(0, TAIL_OFFSET);
            this.tail = area.slice(TAIL_OFFSET, HEADER_AREA - TAIL_OFFSET);
        }

        void set(final int type, final long cookie, final long offset, final int length)
        {
            this.type = type;
            this.cookie = cookie;
            this.offset = offset;
            this.length = length;
        }
    }

    /** Why a request is refused, with the NBD error and the message of the structured error chunk. */
    private enum Reason
    {
        UNKNOWN_COMMAND(NBD_EINVAL, "unknown command"),
        BAD_FLAGS(NBD_EINVAL, "flag not valid for this command or not advertised"),
        READ_ONLY(NBD_EPERM, "export is read-only"),
        FLUSH_RANGE(NBD_EINVAL, "FLUSH offset and length must be 0"),
        NO_CONTEXT(NBD_EINVAL, "BLOCK_STATUS needs a negotiated base:allocation meta context"),
        OUT_OF_RANGE(NBD_EINVAL, "request beyond the end of the export"),
        NO_SPACE(NBD_ENOSPC, "write beyond the end of the export"),
        MISALIGNED(NBD_EINVAL, "offset or length not a multiple of the minimum block size"),
        TOO_LARGE(NBD_EINVAL, "READ longer than the 32 MiB maximum payload"),
        ZERO_LENGTH(NBD_EINVAL, "BLOCK_STATUS of zero length"),
        SHORT_READ(NBD_EIO, "short read from the device"),
        DEVICE(NBD_EIO, "device error");

        final int errno;
        final byte[] message;

        Reason(final int errno, final String message)
        {
            this.errno = errno;
            this.message = message.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        }
    }
}
