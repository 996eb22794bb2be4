package io.understudy.aeron;

import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

import java.nio.charset.StandardCharsets;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

/**
 * Flyweight over the block shared by the link's control messages (HELLO_ACK, REFUSE, BARRIER, BARRIER_DONE,
 * HEARTBEAT, GOODBYE of {@link WireProtocol}, which says what each field means per message), followed by an
 * optional text:
 * <pre>
 *   0                               64 bits
 *   +-------------------------------+
 *   | id                   u64 LE   |  generation id or correlation id
 *   +-------------------------------+
 *   | epoch                u64 LE   |  the sender's epoch
 *   +-------------------------------+
 *   | value                u64 LE   |  BARRIER: timeout in ns
 *   +---------------+---------------+
 *   | code i32 LE   | reserved u32  |  refusal code, result, failover flag
 *   +---------------+---------------+
 *   | text length u16 LE | text: UTF-8, at most MAX_TEXT bytes  (at blockLength; absent = empty)
 *   +--------------------+-----------------------------------
 * </pre>
 * Control messages are rare (a few a second): decoding the text allocates a String, nothing else does.
 */
public final class ControlFlyweight
{
    public static final int BLOCK_LENGTH = 32;

    private static final int ID_OFFSET = 0;
    private static final int EPOCH_OFFSET = 8;
    private static final int VALUE_OFFSET = 16;
    private static final int CODE_OFFSET = 24;
    private static final int RESERVED_OFFSET = 28;

    private DirectBuffer buffer;
    private MutableDirectBuffer mutable;
    private int offset;

    public ControlFlyweight wrap(final DirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = null;
        this.offset = offset;
        return this;
    }

    public ControlFlyweight wrap(final MutableDirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = buffer;
        this.offset = offset;
        return this;
    }

    /** Writes the block and no text; @return the block's length. */
    public int encode(final long id, final long epoch, final long value, final int code)
    {
        mutable.putLong(offset + ID_OFFSET, id, LITTLE_ENDIAN);
        mutable.putLong(offset + EPOCH_OFFSET, epoch, LITTLE_ENDIAN);
        mutable.putLong(offset + VALUE_OFFSET, value, LITTLE_ENDIAN);
        mutable.putInt(offset + CODE_OFFSET, code, LITTLE_ENDIAN);
        mutable.putInt(offset + RESERVED_OFFSET, 0, LITTLE_ENDIAN);
        return BLOCK_LENGTH;
    }

    public long id()
    {
        return buffer.getLong(offset + ID_OFFSET, LITTLE_ENDIAN);
    }

    public long epoch()
    {
        return buffer.getLong(offset + EPOCH_OFFSET, LITTLE_ENDIAN);
    }

    public long value()
    {
        return buffer.getLong(offset + VALUE_OFFSET, LITTLE_ENDIAN);
    }

    public int code()
    {
        return buffer.getInt(offset + CODE_OFFSET, LITTLE_ENDIAN);
    }

    /**
     * Writes {@code text} (cut to {@link WireProtocol#MAX_TEXT} bytes) as a u16 length and UTF-8 bytes.
     *
     * @return the bytes written.
     */
    public static int putText(final MutableDirectBuffer buffer, final int at, final String text)
    {
        final byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        final int length = Math.min(bytes.length, WireProtocol.MAX_TEXT);
        buffer.putShort(at, (short)length, LITTLE_ENDIAN);
        buffer.putBytes(at + 2, bytes, 0, length);
        return 2 + length;
    }

    /** @return the text at {@code at}, or empty if the message ends before it or it overruns {@code limit}. */
    public static String getText(final DirectBuffer buffer, final int at, final int limit)
    {
        if (at + 2 > limit)
        {
            return "";
        }
        final int length = buffer.getShort(at, LITTLE_ENDIAN) & 0xFFFF;
        if (length > WireProtocol.MAX_TEXT || at + 2 + length > limit)
        {
            return "";
        }
        final byte[] bytes = new byte[length];
        buffer.getBytes(at + 2, bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
