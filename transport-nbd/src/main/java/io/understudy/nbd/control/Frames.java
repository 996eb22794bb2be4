package io.understudy.nbd.control;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * Reads and writes {@link ControlProtocol} frames on a blocking socket. The reader is used by one thread;
 * writers are serialised by this object's monitor so frames never interleave. Buffers are reused: the
 * payload handed to the reader's caller is valid until the next {@link #read}.
 */
final class Frames
{
    private final DataInputStream in;
    private final OutputStream out;
    private final ByteBuffer readPayload = ByteBuffer.allocate(ControlProtocol.MAX_PAYLOAD);
    private final ByteBuffer writeBuffer =
        ByteBuffer.allocate(ControlProtocol.HEADER_LENGTH + ControlProtocol.MAX_PAYLOAD);
    private short type;
    private long correlation;

    Frames(final Socket socket) throws IOException
    {
        this.in = new DataInputStream(socket.getInputStream());
        this.out = socket.getOutputStream();
    }

    /** Blocks (up to the socket's read timeout) for the next frame; then see {@link #type()} and friends. */
    void read() throws IOException
    {
        final int magic = in.readInt();
        final short version = in.readShort();
        type = in.readShort();
        correlation = in.readLong();
        final int length = in.readInt();
        if (magic != ControlProtocol.MAGIC)
        {
            throw new ProtocolException("bad magic 0x" + Integer.toHexString(magic));
        }
        if (version != ControlProtocol.VERSION)
        {
            throw new ProtocolException("unsupported version " + version + " (this side speaks " +
                ControlProtocol.VERSION + ")");
        }
        if (length < 0 || length > ControlProtocol.MAX_PAYLOAD)
        {
            throw new ProtocolException("payload of " + length + " bytes exceeds " + ControlProtocol.MAX_PAYLOAD);
        }
        readPayload.clear().limit(length);
        in.readFully(readPayload.array(), 0, length);
    }

    short type()
    {
        return type;
    }

    long correlation()
    {
        return correlation;
    }

    ByteBuffer payload()
    {
        return readPayload;
    }

    /** Starts a frame in the write buffer; the caller holds this object's monitor until {@link #send}. */
    ByteBuffer begin(final short frameType, final long frameCorrelation)
    {
        return writeBuffer.clear().putInt(ControlProtocol.MAGIC).putShort(ControlProtocol.VERSION)
            .putShort(frameType).putLong(frameCorrelation).putInt(0);
    }

    /** Patches the length into the frame begun by {@link #begin} and writes it whole. */
    void send() throws IOException
    {
        writeBuffer.putInt(16, writeBuffer.position() - ControlProtocol.HEADER_LENGTH);
        out.write(writeBuffer.array(), 0, writeBuffer.position());
        out.flush();
    }

    static void putString(final ByteBuffer buffer, final String text)
    {
        final byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        final int length = Math.min(bytes.length, Math.min(0xFFFF, buffer.remaining() - 2));
        buffer.putShort((short)length).put(bytes, 0, length);
    }

    static String getString(final ByteBuffer buffer)
    {
        final int length = buffer.getShort() & 0xFFFF;
        final String text = new String(buffer.array(), buffer.position(), length, StandardCharsets.UTF_8);
        buffer.position(buffer.position() + length);
        return text;
    }

    /** A frame this side cannot accept: the link ends. */
    static final class ProtocolException extends IOException
    {
        ProtocolException(final String message)
        {
            super(message);
        }
    }
}
