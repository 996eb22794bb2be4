package io.understudy.nbd.client;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.device.IoCompletion;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

import static io.understudy.nbd.protocol.NbdProtocol.*;

/**
 * A remote NBD export as a {@link BlockDevice}: a pipelined client with up to 64 requests in flight on one
 * connection, replies matched to requests by cookie (the slot index) in whatever order the server sends them.
 * <p>
 * Submission writes the request header and any WRITE payload with one gathering write under a lock (requests
 * must not interleave on the wire). A receiver thread reads replies in bulk into a direct buffer, copies READ data
 * (or zeroes, for holes) into the caller's buffer and completes the request on that thread, after returning its
 * slot. {@link #blockStatus} is synchronous, as the contract requires: the caller waits for its reply.
 * <p>
 * If the connection fails, every request in flight completes with {@link Errno#EIO} and later submissions fail
 * the same way: the device does not reconnect.
 */
public final class NbdClientDevice implements BlockDevice
{
    private static final System.Logger LOG = System.getLogger("io.understudy.nbd.client");
    private static final VarHandle FREE_MASK;
    private static final int SLOTS = 64;
    private static final int RX_CAPACITY = 256 << 10;
    private static final int TX_CAPACITY = 256 << 10;
    private static final int MAX_EXTENTS = 1024;
    private static final MemorySegment ZEROES = Arena.global().allocate(64 << 10, 4096);

    static
    {
        try
        {
            FREE_MASK = MethodHandles.lookup().findVarHandle(NbdClientDevice.class, "freeMask", long.class);
        }
        catch (final ReflectiveOperationException ex)
        {
            throw new ExceptionInInitializerError(ex);
        }
    }

    private final SocketChannel channel;
    private final String name;
    private final long size;
    private final int flags;
    private final int minimumBlockSize;
    private final boolean structured;
    private final int contextId;
    private final Slot[] slots = new Slot[SLOTS];
    /** Requests are staged here (header, then payload in pieces) and written from it, under {@link #sendLock}. */
    private final ByteBuffer tx = ByteBuffer.allocateDirect(TX_CAPACITY);
    private final MemorySegment txSegment = MemorySegment.ofBuffer(tx);
    private final ReentrantLock sendLock = new ReentrantLock();
    private final ByteBuffer rx = ByteBuffer.allocateDirect(RX_CAPACITY);
    private final MemorySegment rxSegment = MemorySegment.ofBuffer(rx);
    private final Thread receiver;

    /** Bit i set: slot i is free. CAS to take (submitters), getAndBitwiseOr to return (receiver). */
    @SuppressWarnings("unused")
    private volatile long freeMask = -1L;
    private volatile boolean failed;
    private volatile boolean closed;

    private NbdClientDevice(
        final SocketChannel channel, final String name, final long size, final int flags, final int minimumBlockSize,
        final boolean structured, final int contextId)
    {
        this.channel = channel;
        this.name = name;
        this.size = size;
        this.flags = flags;
        this.minimumBlockSize = minimumBlockSize;
        this.structured = structured;
        this.contextId = contextId;
        final ByteBuffer headers = ByteBuffer.allocateDirect(SLOTS * REQUEST_HEADER_LENGTH);
        for (int i = 0; i < SLOTS; i++)
        {
            slots[i] = new Slot(headers.slice(i * REQUEST_HEADER_LENGTH, REQUEST_HEADER_LENGTH));
        }
        rx.limit(0);
        receiver = Thread.ofPlatform().name("nbd-client-" + name).daemon(true).start(this::receiveLoop);
    }

    /**
     * Connects to {@code address} (a {@link UnixDomainSocketAddress} or an {@code InetSocketAddress}) and
     * negotiates structured replies, {@code base:allocation} and the export with NBD_OPT_GO.
     *
     * @throws IOException naming the server and what it refused.
     */
    public static NbdClientDevice connect(final SocketAddress address, final String exportName) throws IOException
    {
        final SocketChannel channel = address instanceof UnixDomainSocketAddress
            ? SocketChannel.open(StandardProtocolFamily.UNIX) : SocketChannel.open();
        try
        {
            channel.connect(address);
            if (!(address instanceof UnixDomainSocketAddress))
            {
                channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
            return negotiate(channel, address + "/" + exportName, exportName);
        }
        catch (final IOException ex)
        {
            channel.close();
            throw new IOException("NBD " + address + ": " + ex.getMessage(), ex);
        }
        catch (final RuntimeException ex)
        {
            channel.close();
            throw ex;
        }
    }

    private static NbdClientDevice negotiate(final SocketChannel channel, final String name, final String exportName)
        throws IOException
    {
        final ByteBuffer greeting = readFully(channel, 18);
        if (greeting.getLong() != NBDMAGIC || greeting.getLong() != IHAVEOPT)
        {
            throw new IOException("not a fixed newstyle NBD server");
        }
        final int serverFlags = greeting.getShort() & 0xFFFF;
        if ((serverFlags & FLAG_FIXED_NEWSTYLE) == 0)
        {
            throw new IOException("server does not speak fixed newstyle");
        }
        final boolean noZeroes = (serverFlags & FLAG_NO_ZEROES) != 0;
        writeFully(channel, ByteBuffer.allocate(4)
            .putInt(CLIENT_FLAG_FIXED_NEWSTYLE | (noZeroes ? CLIENT_FLAG_NO_ZEROES : 0)).flip());
        final byte[] export = exportName.getBytes(StandardCharsets.UTF_8);

        sendOption(channel, OPT_STRUCTURED_REPLY, new byte[0]);
        final boolean structured = readOptionReply(channel, OPT_STRUCTURED_REPLY).type == REP_ACK;
        int contextId = -1;
        if (structured)
        {
            final byte[] query = META_CONTEXT_BASE_ALLOCATION.getBytes(StandardCharsets.US_ASCII);
            sendOption(channel, OPT_SET_META_CONTEXT, ByteBuffer.allocate(4 + export.length + 4 + 4 + query.length)
                .putInt(export.length).put(export).putInt(1).putInt(query.length).put(query).array());
            OptionReply reply;
            while ((reply = readOptionReply(channel, OPT_SET_META_CONTEXT)).type == REP_META_CONTEXT)
            {
                contextId = reply.data.getInt(0);
            }
        }
        sendOption(channel, OPT_GO, ByteBuffer.allocate(4 + export.length + 2 + 2)
            .putInt(export.length).put(export).putShort((short)1).putShort((short)INFO_BLOCK_SIZE).array());
        long size = -1;
        int transmissionFlags = 0;
        int minimum = 1;
        while (true)
        {
            final OptionReply reply = readOptionReply(channel, OPT_GO);
            if (reply.type == REP_ACK)
            {
                break;
            }
            if (reply.type < 0)
            {
                throw new IOException("export '" + exportName + "' refused: " + optionError(reply.type) + " "
                    + StandardCharsets.UTF_8.decode(reply.data));
            }
            if (reply.type == REP_INFO && reply.data.remaining() >= 2)
            {
                final int info = reply.data.getShort(0) & 0xFFFF;
                if (info == INFO_EXPORT && reply.data.remaining() == 12)
                {
                    size = reply.data.getLong(2);
                    transmissionFlags = reply.data.getShort(10) & 0xFFFF;
                }
                else if (info == INFO_BLOCK_SIZE && reply.data.remaining() == 14)
                {
                    minimum = Math.max(1, reply.data.getInt(2));
                }
            }
        }
        if (size < 0)
        {
            throw new IOException("server acknowledged GO without NBD_INFO_EXPORT");
        }
        return new NbdClientDevice(channel, name, size, transmissionFlags, minimum, structured, contextId);
    }

    @Override
    public long size()
    {
        return size;
    }

    @Override
    public int alignment()
    {
        return minimumBlockSize;
    }

    @Override
    public boolean isReadOnly()
    {
        return (flags & TFLAG_READ_ONLY) != 0;
    }

    @Override
    public boolean canDiscard()
    {
        return (flags & TFLAG_SEND_TRIM) != 0;
    }

    @Override
    public boolean canFastZero()
    {
        return (flags & TFLAG_SEND_FAST_ZERO) != 0;
    }

    /** @return the transmission flags the server advertised. */
    public int transmissionFlags()
    {
        return flags;
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        if (buffer.byteSize() < length || length > MAX_PAYLOAD)
        {
            return reject(completion, cookie, Errno.EINVAL);
        }
        return submit(CMD_READ, 0, offset, length, buffer, Errno.EINVAL, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags, final IoCompletion completion,
        final long cookie)
    {
        if (buffer.byteSize() < length || length > MAX_PAYLOAD)
        {
            return reject(completion, cookie, Errno.EINVAL);
        }
        return submit(CMD_WRITE, fua(flags), offset, length, buffer, Errno.ENOSPC, completion, cookie);
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        if ((flags & TFLAG_SEND_FLUSH) == 0)
        {
            return reject(completion, cookie, 0);
        }
        return submit(CMD_FLUSH, 0, 0, 0, null, Errno.EINVAL, completion, cookie);
    }

    @Override
    public boolean discard(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (!canDiscard())
        {
            final int invalid = rangeError(offset, length, Errno.EINVAL);
            return reject(completion, cookie, invalid != 0 ? invalid : (isReadOnly() ? Errno.EPERM : 0));
        }
        return submit(CMD_TRIM, 0, offset, length, null, Errno.EINVAL, completion, cookie);
    }

    @Override
    public boolean writeZeroes(
        final long offset, final long length, final int flags, final IoCompletion completion, final long cookie)
    {
        if ((this.flags & TFLAG_SEND_WRITE_ZEROES) == 0)
        {
            return reject(completion, cookie, isReadOnly() ? Errno.EPERM : Errno.ENOTSUP);
        }
        int commandFlags = fua(flags) | ((flags & FLAG_NO_HOLE) != 0 ? CMD_FLAG_NO_HOLE : 0);
        if ((flags & FLAG_FAST_ZERO) != 0)
        {
            if (!canFastZero())
            {
                return reject(completion, cookie, Errno.ENOTSUP);
            }
            commandFlags |= CMD_FLAG_FAST_ZERO;
        }
        return submit(CMD_WRITE_ZEROES, commandFlags, offset, length, null, Errno.ENOSPC, completion, cookie);
    }

    @Override
    public long blockStatus(final long offset, final long length, final ExtentSink sink)
    {
        final int invalid = rangeError(offset, length, Errno.EINVAL);
        if (invalid != 0 || length == 0)
        {
            return -(invalid != 0 ? invalid : Errno.EINVAL);
        }
        if (contextId < 0)
        {
            // No base:allocation: "allocated data" is always a correct answer.
            sink.onExtent(length, 0);
            return length;
        }
        final Slot slot = acquire();
        if (slot == null)
        {
            return -Errno.EAGAIN;
        }
        final long requested = Math.min(length, 0xFFFF_FFFFL & -minimumBlockSize);
        slot.waiter = Thread.currentThread();
        slot.extentCount = 0;
        slot.done = false;
        slot.set(CMD_BLOCK_STATUS, offset, requested, null, null, 0);
        if (failed)
        {
            release(slot);
            return -Errno.EIO;
        }
        if (!send(slot.index, CMD_BLOCK_STATUS, 0, offset, requested, null))
        {
            closeChannel();
        }
        while (!slot.done)
        {
            LockSupport.park(this);
        }
        final int result = slot.result;
        final int count = slot.extentCount;
        final long[] lengths = slot.extentLengths;
        final int[] states = slot.extentStates;
        release(slot);
        if (result < 0)
        {
            return result;
        }
        long described = 0;
        for (int i = 0; i < count && described < requested; i++)
        {
            final long extent = Math.min(lengths[i], requested - described);
            described += extent;
            if (!sink.onExtent(extent, states[i] & (ExtentSink.HOLE | ExtentSink.ZERO)))
            {
                break;
            }
        }
        return described;
    }

    /** Waits for requests in flight, sends NBD_CMD_DISC and closes the connection. */
    @Override
    public void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        while ((long)FREE_MASK.getVolatile(this) != -1L && !failed)
        {
            LockSupport.parkNanos(100_000);
        }
        if (!failed)
        {
            sendLock.lock();
            try
            {
                writeFully(channel, ByteBuffer.allocate(REQUEST_HEADER_LENGTH).putInt(REQUEST_MAGIC)
                    .putShort((short)0).putShort((short)CMD_DISC).putLong(0).putLong(0).putInt(0).flip());
            }
            catch (final IOException ex)
            {
                LOG.log(System.Logger.Level.DEBUG, "NBD {0}: disconnect: {1}", name, ex.getMessage());
            }
            finally
            {
                sendLock.unlock();
            }
        }
        try
        {
            channel.close();
            receiver.join();
        }
        catch (final IOException ex)
        {
            LOG.log(System.Logger.Level.DEBUG, "NBD {0}: close: {1}", name, ex.getMessage());
        }
        catch (final InterruptedException ex)
        {
            Thread.currentThread().interrupt();
        }
    }

    private int fua(final int deviceFlags)
    {
        return (deviceFlags & FLAG_FUA) != 0 && (flags & TFLAG_SEND_FUA) != 0 ? CMD_FLAG_FUA : 0;
    }

    private int rangeError(final long offset, final long length, final int error)
    {
        return offset < 0 || length < 0 || offset > size || length > size - offset ? error : 0;
    }

    private boolean submit(
        final int type, final int commandFlags, final long offset, final long length, final MemorySegment buffer,
        final int rangeErrno, final IoCompletion completion, final long cookie)
    {
        final int invalid = type == CMD_FLUSH ? 0 : rangeError(offset, length, rangeErrno);
        if (invalid != 0)
        {
            return reject(completion, cookie, invalid);
        }
        if (type != CMD_READ && type != CMD_FLUSH && isReadOnly())
        {
            return reject(completion, cookie, Errno.EPERM);
        }
        if (failed || closed)
        {
            return reject(completion, cookie, Errno.EIO);
        }
        if (type == CMD_TRIM || type == CMD_WRITE_ZEROES)
        {
            if (length > 0xFFFF_FFFFL)
            {
                // Longer than one compact request can name: the caller splits it (the device reports EOVERFLOW).
                return reject(completion, cookie, Errno.EOVERFLOW);
            }
        }
        final Slot slot = acquire();
        if (slot == null)
        {
            return false;
        }
        slot.set(type, offset, length, buffer, completion, cookie);
        // Volatile read after taking the slot; the receiver sets failed before scanning the slots (Dekker): either
        // we see the failure and answer here, or the receiver sees the slot and answers it. takeCompletion()
        // makes sure only one of us does.
        if (failed)
        {
            final IoCompletion taken = takeCompletion(slot);
            if (taken != null)
            {
                release(slot);
                taken.onComplete(cookie, -Errno.EIO);
            }
            return true;
        }
        if (!send(slot.index, type, commandFlags, offset, length, buffer))
        {
            closeChannel();
        }
        return true;
    }

    private boolean reject(final IoCompletion completion, final long cookie, final int errno)
    {
        completion.onComplete(cookie, errno == 0 ? 0 : -errno);
        return true;
    }

    private Slot acquire()
    {
        while (true)
        {
            final long free = (long)FREE_MASK.getVolatile(this);
            if (free == 0)
            {
                return null;
            }
            final int index = Long.numberOfTrailingZeros(free);
            // Volatile CAS: acquires the slot as the receiver left it when it returned the bit.
            if (FREE_MASK.compareAndSet(this, free, free & ~(1L << index)))
            {
                final Slot slot = slots[index];
                slot.index = index;
                return slot;
            }
        }
    }

    private void release(final Slot slot)
    {
        slot.buffer = null;
        slot.completion = null;
        slot.waiter = null;
        FREE_MASK.getAndBitwiseOr(this, 1L << slot.index);
    }

    /**
     * Writes a request: the header and the start of a WRITE payload are copied into {@link #tx} and sent with one
     * system call; a payload longer than the staging buffer follows in further pieces. Copying costs less than
     * the socket write it saves for small requests, and it avoids creating a buffer view per request.
     * <p>
     * The request comes from the submitter's own arguments, never from the slot: once the connection fails, the
     * receiver answers and releases every slot in flight (clearing its buffer, and another submitter may take it)
     * while this thread may still be sending from it.
     */
    private boolean send(
        final int index, final int type, final int commandFlags, final long offset, final long length,
        final MemorySegment buffer)
    {
        sendLock.lock();
        try
        {
            tx.clear();
            tx.putInt(REQUEST_MAGIC).putShort((short)commandFlags).putShort((short)type).putLong(index)
                .putLong(offset).putInt((int)length);
            long payload = type == CMD_WRITE ? length : 0;
            long sent = 0;
            while (true)
            {
                final int piece = (int)Math.min(payload - sent, tx.remaining());
                if (piece > 0)
                {
                    MemorySegment.copy(buffer, sent, txSegment, tx.position(), piece);
                }
                tx.position(tx.position() + piece).flip();
                sent += piece;
                while (tx.hasRemaining())
                {
                    channel.write(tx);
                }
                if (sent == payload)
                {
                    return true;
                }
                tx.clear();
            }
        }
        catch (final IOException ex)
        {
            return false;
        }
        finally
        {
            sendLock.unlock();
        }
    }

    private void receiveLoop()
    {
        try
        {
            while (true)
            {
                ensure(4);
                final int magic = rx.getInt(rx.position());
                if (magic == SIMPLE_REPLY_MAGIC)
                {
                    ensure(SIMPLE_REPLY_LENGTH);
                    rx.getInt();
                    final int error = rx.getInt();
                    final Slot slot = slotFor(rx.getLong());
                    if (error == 0 && slot.type == CMD_READ)
                    {
                        copyInto(slot, 0, (int)slot.length);
                    }
                    complete(slot, error == 0 ? transferred(slot) : -error);
                }
                else if (magic == STRUCTURED_REPLY_MAGIC)
                {
                    ensure(CHUNK_HEADER_LENGTH);
                    rx.getInt();
                    final int chunkFlags = rx.getShort() & 0xFFFF;
                    final int type = rx.getShort() & 0xFFFF;
                    final Slot slot = slotFor(rx.getLong());
                    final long length = rx.getInt() & 0xFFFF_FFFFL;
                    chunk(slot, type, length);
                    if ((chunkFlags & REPLY_FLAG_DONE) != 0)
                    {
                        complete(slot, slot.error != 0 ? -slot.error : transferred(slot));
                    }
                }
                else
                {
                    throw new IOException(String.format("bad reply magic 0x%08x", magic));
                }
            }
        }
        catch (final IOException ex)
        {
            if (!closed)
            {
                LOG.log(System.Logger.Level.WARNING, "NBD {0}: connection lost: {1}", name, ex.getMessage());
            }
            fail();
        }
        catch (final RuntimeException | Error ex)
        {
            // A bug (ours or a caller's, e.g. a buffer from another thread's confined arena) must not leave the
            // receiver dead with requests that never complete: close() would wait for them for ever.
            LOG.log(System.Logger.Level.ERROR, "NBD " + name + ": receiver failed; failing every request", ex);
            fail();
        }
    }

    private void chunk(final Slot slot, final int type, final long length) throws IOException
    {
        switch (type)
        {
            case REPLY_TYPE_NONE ->
            {
            }
            case REPLY_TYPE_OFFSET_DATA ->
            {
                ensure(8);
                final long at = rx.getLong() - slot.offset;
                final long dataLength = length - 8;
                if (at < 0 || dataLength < 0 || at + dataLength > slot.length)
                {
                    throw new IOException("OFFSET_DATA chunk outside its request");
                }
                copyInto(slot, (int)at, (int)dataLength);
            }
            case REPLY_TYPE_OFFSET_HOLE ->
            {
                ensure(12);
                final long at = rx.getLong() - slot.offset;
                final long holeLength = rx.getInt() & 0xFFFF_FFFFL;
                if (at < 0 || at + holeLength > slot.length)
                {
                    throw new IOException("OFFSET_HOLE chunk outside its request");
                }
                for (long done = 0; done < holeLength; done += ZEROES.byteSize())
                {
                    MemorySegment.copy(ZEROES, 0, slot.buffer, at + done, Math.min(ZEROES.byteSize(),
                        holeLength - done));
                }
            }
            case REPLY_TYPE_BLOCK_STATUS ->
            {
                if (length < 12 || (length - 4) % 8 != 0)
                {
                    throw new IOException("malformed BLOCK_STATUS chunk");
                }
                ensure(4);
                rx.getInt();
                for (long i = 0; i < (length - 4) / 8; i++)
                {
                    ensure(8);
                    final long extent = rx.getInt() & 0xFFFF_FFFFL;
                    final int state = rx.getInt();
                    if (slot.extentCount < MAX_EXTENTS)
                    {
                        slot.extentLengths[slot.extentCount] = extent;
                        slot.extentStates[slot.extentCount++] = state;
                    }
                }
            }
            default ->
            {
                if ((type & 0x8000) == 0)
                {
                    throw new IOException("unknown structured reply type " + type);
                }
                if (length < 6)
                {
                    throw new IOException("error chunk too short");
                }
                ensure(4);
                final int error = rx.getInt();
                slot.error = error == 0 ? Errno.EIO : error;
                skip(length - 4);
            }
        }
    }

    /** @return the success result: bytes transferred for READ and WRITE, 0 for the others. */
    private static int transferred(final Slot slot)
    {
        return slot.type == CMD_READ || slot.type == CMD_WRITE ? (int)slot.length : 0;
    }

    private Slot slotFor(final long cookie) throws IOException
    {
        if (cookie < 0 || cookie >= SLOTS || ((long)FREE_MASK.getVolatile(this) & (1L << cookie)) != 0)
        {
            throw new IOException("reply for unknown cookie " + cookie);
        }
        return slots[(int)cookie];
    }

    private void complete(final Slot slot, final int result)
    {
        if (slot.waiter != null)
        {
            final Thread waiter = slot.waiter;
            slot.result = result;
            // Volatile write: the waiter reads the extents and the result after seeing done.
            slot.done = true;
            LockSupport.unpark(waiter);
            return;
        }
        final IoCompletion completion = slot.completion;
        final long cookie = slot.cookie;
        release(slot);
        completion.onComplete(cookie, result);
    }

    /** Receiver thread, on its way out: fails every request in flight and every later one with EIO. */
    private void fail()
    {
        failed = true;
        closeChannel();
        final long inFlight = ~(long)FREE_MASK.getVolatile(this);
        for (int i = 0; i < SLOTS; i++)
        {
            final Slot slot = slots[i];
            if ((inFlight & (1L << i)) == 0)
            {
                continue;
            }
            if (slot.waiter != null)
            {
                slot.result = -Errno.EIO;
                slot.done = true;
                LockSupport.unpark(slot.waiter);
                continue;
            }
            final IoCompletion completion = takeCompletion(slot);
            if (completion != null)
            {
                final long cookie = slot.cookie;
                release(slot);
                completion.onComplete(cookie, -Errno.EIO);
            }
        }
    }

    private static IoCompletion takeCompletion(final Slot slot)
    {
        synchronized (slot)
        {
            final IoCompletion completion = slot.completion;
            slot.completion = null;
            return completion;
        }
    }

    private void closeChannel()
    {
        try
        {
            channel.close();
        }
        catch (final IOException ex)
        {
            LOG.log(System.Logger.Level.DEBUG, "NBD {0}: close: {1}", name, ex.getMessage());
        }
    }

    private void copyInto(final Slot slot, final int at, final int length) throws IOException
    {
        int copied = 0;
        while (copied < length)
        {
            if (!rx.hasRemaining())
            {
                fill();
            }
            final int chunk = Math.min(rx.remaining(), length - copied);
            MemorySegment.copy(rxSegment, rx.position(), slot.buffer, at + copied, chunk);
            rx.position(rx.position() + chunk);
            copied += chunk;
        }
    }

    private void skip(final long count) throws IOException
    {
        long left = count;
        while (left > 0)
        {
            if (!rx.hasRemaining())
            {
                fill();
            }
            final int chunk = (int)Math.min(rx.remaining(), left);
            rx.position(rx.position() + chunk);
            left -= chunk;
        }
    }

    private void ensure(final int count) throws IOException
    {
        while (rx.remaining() < count)
        {
            fill();
        }
    }

    private void fill() throws IOException
    {
        rx.compact();
        final int read = channel.read(rx);
        rx.flip();
        if (read < 0)
        {
            throw new EOFException("server closed the connection");
        }
    }

    private static void sendOption(final SocketChannel channel, final int option, final byte[] data)
        throws IOException
    {
        writeFully(channel, ByteBuffer.allocate(OPTION_HEADER_LENGTH + data.length).putLong(IHAVEOPT).putInt(option)
            .putInt(data.length).put(data).flip());
    }

    private static OptionReply readOptionReply(final SocketChannel channel, final int option) throws IOException
    {
        final ByteBuffer header = readFully(channel, OPTION_REPLY_HEADER_LENGTH);
        if (header.getLong() != OPTION_REPLY_MAGIC || header.getInt() != option)
        {
            throw new IOException("bad option reply");
        }
        final int type = header.getInt();
        final int length = header.getInt();
        if (length < 0 || length > MAX_STRING + 64)
        {
            throw new IOException("option reply of " + (length & 0xFFFF_FFFFL) + " bytes");
        }
        return new OptionReply(type, readFully(channel, length));
    }

    private static String optionError(final int type)
    {
        return switch (type)
        {
            case REP_ERR_UNSUP -> "unsupported";
            case REP_ERR_POLICY -> "policy";
            case REP_ERR_INVALID -> "invalid";
            case REP_ERR_TLS_REQD -> "TLS required";
            case REP_ERR_UNKNOWN -> "no such export";
            case REP_ERR_SHUTDOWN -> "server shutting down";
            case REP_ERR_BLOCK_SIZE_REQD -> "block size required";
            default -> String.format("error 0x%08x", type);
        };
    }

    private static ByteBuffer readFully(final SocketChannel channel, final int length) throws IOException
    {
        final ByteBuffer buffer = ByteBuffer.allocate(length);
        while (buffer.hasRemaining())
        {
            if (channel.read(buffer) < 0)
            {
                throw new EOFException("server closed the connection during negotiation");
            }
        }
        return buffer.flip();
    }

    private static void writeFully(final SocketChannel channel, final ByteBuffer buffer) throws IOException
    {
        while (buffer.hasRemaining())
        {
            channel.write(buffer);
        }
    }

    private record OptionReply(int type, ByteBuffer data)
    {
    }

    /** One request in flight: its parameters, the caller's buffer and completion, and the reply state. */
    private static final class Slot
    {
        final ByteBuffer header;
        final long[] extentLengths = new long[MAX_EXTENTS];
        final int[] extentStates = new int[MAX_EXTENTS];
        int index;
        int type;
        long offset;
        long length;
        MemorySegment buffer;
        IoCompletion completion;
        long cookie;
        int error;
        int result;
        int extentCount;
        Thread waiter;
        volatile boolean done;

        Slot(final ByteBuffer header)
        {
            this.header = header;
        }

        void set(
            final int type, final long offset, final long length, final MemorySegment buffer,
            final IoCompletion completion, final long cookie)
        {
            this.type = type;
            this.offset = offset;
            this.length = length;
            this.buffer = buffer;
            this.completion = completion;
            this.cookie = cookie;
            this.error = 0;
        }
    }
}
