package io.understudy.nbd.server;

import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.understudy.nbd.protocol.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** A deliberately low-level NBD client for protocol tests: it sends exactly the bytes it is told to. */
final class RawClient implements AutoCloseable
{
    static final int CLIENT_FIXED_NEWSTYLE = 1;
    static final int CLIENT_NO_ZEROES = 2;

    final SocketChannel channel;
    int transmissionFlags;
    long exportSize;

    private RawClient(final SocketChannel channel)
    {
        this.channel = channel;
    }

    static RawClient connect(final Path socket) throws IOException
    {
        final SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        channel.connect(UnixDomainSocketAddress.of(socket));
        return new RawClient(channel);
    }

    /** Reads and checks the greeting bytes, then sends the client flags. */
    void handshake(final int clientFlags) throws IOException
    {
        assertArrayEquals(new byte[] {'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C', 'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T',
            0, 3}, readBytes(18), "greeting: NBDMAGIC IHAVEOPT, flags FIXED_NEWSTYLE|NO_ZEROES");
        send(ByteBuffer.allocate(4).putInt(clientFlags).flip());
    }

    void option(final int option, final byte[] data) throws IOException
    {
        send(ByteBuffer.allocate(16 + data.length).putLong(IHAVEOPT).putInt(option).putInt(data.length).put(data)
            .flip());
    }

    OptionReply readOptionReply() throws IOException
    {
        final ByteBuffer header = ByteBuffer.wrap(readBytes(20));
        assertEquals(OPTION_REPLY_MAGIC, header.getLong(), "option reply magic");
        final int option = header.getInt();
        final int type = header.getInt();
        final int length = header.getInt();
        return new OptionReply(option, type, readBytes(length));
    }

    /** Reads replies up to and including the final one (ACK or error). */
    List<OptionReply> readOptionReplies() throws IOException
    {
        final List<OptionReply> replies = new ArrayList<>();
        while (true)
        {
            final OptionReply reply = readOptionReply();
            replies.add(reply);
            if (reply.type == REP_ACK || reply.type < 0)
            {
                return replies;
            }
        }
    }

    void structuredReplies() throws IOException
    {
        option(OPT_STRUCTURED_REPLY, new byte[0]);
        assertEquals(REP_ACK, readOptionReply().type);
    }

    void setMetaContext(final String export, final String... queries) throws IOException
    {
        option(OPT_SET_META_CONTEXT, metaContextData(export, queries));
        readOptionReplies();
    }

    static byte[] metaContextData(final String export, final String... queries)
    {
        final byte[] name = export.getBytes(StandardCharsets.UTF_8);
        int length = 4 + name.length + 4;
        for (final String query : queries)
        {
            length += 4 + query.length();
        }
        final ByteBuffer data = ByteBuffer.allocate(length).putInt(name.length).put(name).putInt(queries.length);
        for (final String query : queries)
        {
            data.putInt(query.length()).put(query.getBytes(StandardCharsets.UTF_8));
        }
        return data.array();
    }

    static byte[] infoData(final String export, final int... requests)
    {
        final byte[] name = export.getBytes(StandardCharsets.UTF_8);
        final ByteBuffer data = ByteBuffer.allocate(4 + name.length + 2 + 2 * requests.length)
            .putInt(name.length).put(name).putShort((short)requests.length);
        for (final int request : requests)
        {
            data.putShort((short)request);
        }
        return data.array();
    }

    /** NBD_OPT_GO; records size and transmission flags from NBD_INFO_EXPORT. */
    List<OptionReply> go(final String export) throws IOException
    {
        option(OPT_GO, infoData(export, INFO_BLOCK_SIZE));
        final List<OptionReply> replies = readOptionReplies();
        for (final OptionReply reply : replies)
        {
            if (reply.type == REP_INFO && reply.data.length == 12 && reply.data[1] == INFO_EXPORT)
            {
                final ByteBuffer info = ByteBuffer.wrap(reply.data);
                info.getShort();
                exportSize = info.getLong();
                transmissionFlags = info.getShort() & 0xFFFF;
            }
        }
        assertEquals(REP_ACK, replies.getLast().type, "GO must end with ACK");
        return replies;
    }

    void request(final int flags, final int type, final long cookie, final long offset, final long length)
        throws IOException
    {
        request(flags, type, cookie, offset, length, null);
    }

    void request(
        final int flags, final int type, final long cookie, final long offset, final long length, final byte[] payload)
        throws IOException
    {
        final ByteBuffer buffer = ByteBuffer.allocate(28 + (payload == null ? 0 : payload.length))
            .putInt(REQUEST_MAGIC).putShort((short)flags).putShort((short)type).putLong(cookie).putLong(offset)
            .putInt((int)length);
        if (payload != null)
        {
            buffer.put(payload);
        }
        send(buffer.flip());
    }

    /** @return the error of a simple reply, after checking its cookie. */
    int readSimpleReply(final long cookie) throws IOException
    {
        final ByteBuffer reply = ByteBuffer.wrap(readBytes(16));
        assertEquals(SIMPLE_REPLY_MAGIC, reply.getInt(), "simple reply magic");
        final int error = reply.getInt();
        assertEquals(cookie, reply.getLong(), "cookie");
        return error;
    }

    /** Reads a reply header that may be simple or structured. */
    Reply readReply() throws IOException
    {
        final int magic = ByteBuffer.wrap(readBytes(4)).getInt();
        if (magic == SIMPLE_REPLY_MAGIC)
        {
            final ByteBuffer rest = ByteBuffer.wrap(readBytes(12));
            return new Reply(false, REPLY_FLAG_DONE, -1, rest.getLong(4), rest.getInt(0), new byte[0]);
        }
        assertEquals(STRUCTURED_REPLY_MAGIC, magic, "reply magic");
        final ByteBuffer rest = ByteBuffer.wrap(readBytes(16));
        final int flags = rest.getShort() & 0xFFFF;
        final int type = rest.getShort() & 0xFFFF;
        final long cookie = rest.getLong();
        final int length = rest.getInt();
        final byte[] payload = readBytes(length);
        final int error = (type & 0x8000) != 0 ? ByteBuffer.wrap(payload).getInt() : 0;
        return new Reply(true, flags, type, cookie, error, payload);
    }

    byte[] readBytes(final int length) throws IOException
    {
        final ByteBuffer buffer = ByteBuffer.allocate(length);
        while (buffer.hasRemaining())
        {
            if (channel.read(buffer) < 0)
            {
                throw new EOFException("server closed after " + buffer.position() + " of " + length + " bytes");
            }
        }
        return buffer.array();
    }

    void send(final ByteBuffer buffer) throws IOException
    {
        while (buffer.hasRemaining())
        {
            channel.write(buffer);
        }
    }

    void send(final byte[] bytes) throws IOException
    {
        send(ByteBuffer.wrap(bytes));
    }

    /** @return true if the server closed the connection (end of stream or reset) without sending more. */
    boolean closedByServer() throws IOException
    {
        final ByteBuffer one = ByteBuffer.allocate(1);
        try
        {
            return channel.read(one) < 0;
        }
        catch (final IOException ex)
        {
            return true;
        }
    }

    @Override
    public void close() throws IOException
    {
        channel.close();
    }

    record OptionReply(int option, int type, byte[] data)
    {
        String text()
        {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    record Reply(boolean structured, int flags, int type, long cookie, int error, byte[] payload)
    {
        boolean done()
        {
            return (flags & REPLY_FLAG_DONE) != 0;
        }
    }
}
