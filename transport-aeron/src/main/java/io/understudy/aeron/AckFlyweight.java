package io.understudy.aeron;

import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

/**
 * Flyweight over the block of ACK ({@link WireProtocol}), the secondary's answer to one request message:
 * <pre>
 *   0                               64 bits
 *   +-------------------------------+
 *   | cookie               u64 LE   |  the request's cookie, echoed
 *   +---------------+---------------+
 *   | result i32 LE | reserved u32  |  the sink's result: bytes written, 0, or a negated errno
 *   +---------------+---------------+
 * </pre>
 */
public final class AckFlyweight
{
    public static final int BLOCK_LENGTH = 16;
    /** Header and block: the whole message. */
    public static final int MESSAGE_LENGTH = MessageHeader.LENGTH + BLOCK_LENGTH;

    private static final int COOKIE_OFFSET = 0;
    private static final int RESULT_OFFSET = 8;
    private static final int RESERVED_OFFSET = 12;

    private DirectBuffer buffer;
    private MutableDirectBuffer mutable;
    private int offset;

    public AckFlyweight wrap(final DirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = null;
        this.offset = offset;
        return this;
    }

    public AckFlyweight wrap(final MutableDirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = buffer;
        this.offset = offset;
        return this;
    }

    public AckFlyweight encode(final long cookie, final int result)
    {
        mutable.putLong(offset + COOKIE_OFFSET, cookie, LITTLE_ENDIAN);
        mutable.putInt(offset + RESULT_OFFSET, result, LITTLE_ENDIAN);
        mutable.putInt(offset + RESERVED_OFFSET, 0, LITTLE_ENDIAN);
        return this;
    }

    public long cookie()
    {
        return buffer.getLong(offset + COOKIE_OFFSET, LITTLE_ENDIAN);
    }

    public int result()
    {
        return buffer.getInt(offset + RESULT_OFFSET, LITTLE_ENDIAN);
    }
}
