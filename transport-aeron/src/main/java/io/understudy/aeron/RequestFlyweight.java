package io.understudy.aeron;

import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

/**
 * Flyweight over the block of a forwarded request (WRITE, COW_DATA, ZEROES, DISCARD, FLUSH of {@link WireProtocol}):
 * <pre>
 *   0                               64 bits
 *   +-------------------------------+
 *   | cookie               u64 LE   |  echoed in the ACK: primary slot index and sequence
 *   +-------------------------------+
 *   | offset               u64 LE   |  byte offset on the disk (0 for FLUSH)
 *   +-------------------------------+
 *   | length               u64 LE   |  bytes (for WRITE and COW_DATA: the data that follows this block)
 *   +---------------+---------------+
 *   | flags u32 LE  | reserved u32  |  BlockDevice FLAG_FUA / FLAG_NO_HOLE
 *   +---------------+---------------+
 *   | data (WRITE, COW_DATA only) ...
 * </pre>
 * The block is 32 bytes, so WRITE data starts 40 bytes into the message, 8-byte aligned.
 */
public final class RequestFlyweight
{
    public static final int BLOCK_LENGTH = 32;

    private static final int COOKIE_OFFSET = 0;
    private static final int OFFSET_OFFSET = 8;
    private static final int LENGTH_OFFSET = 16;
    private static final int FLAGS_OFFSET = 24;
    private static final int RESERVED_OFFSET = 28;

    private DirectBuffer buffer;
    private MutableDirectBuffer mutable;
    private int offset;

    public RequestFlyweight wrap(final DirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = null;
        this.offset = offset;
        return this;
    }

    public RequestFlyweight wrap(final MutableDirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = buffer;
        this.offset = offset;
        return this;
    }

    public RequestFlyweight encode(final long cookie, final long diskOffset, final long length, final int flags)
    {
        mutable.putLong(offset + COOKIE_OFFSET, cookie, LITTLE_ENDIAN);
        mutable.putLong(offset + OFFSET_OFFSET, diskOffset, LITTLE_ENDIAN);
        mutable.putLong(offset + LENGTH_OFFSET, length, LITTLE_ENDIAN);
        mutable.putInt(offset + FLAGS_OFFSET, flags, LITTLE_ENDIAN);
        mutable.putInt(offset + RESERVED_OFFSET, 0, LITTLE_ENDIAN);
        return this;
    }

    public long cookie()
    {
        return buffer.getLong(offset + COOKIE_OFFSET, LITTLE_ENDIAN);
    }

    public long diskOffset()
    {
        return buffer.getLong(offset + OFFSET_OFFSET, LITTLE_ENDIAN);
    }

    public long length()
    {
        return buffer.getLong(offset + LENGTH_OFFSET, LITTLE_ENDIAN);
    }

    public int flags()
    {
        return buffer.getInt(offset + FLAGS_OFFSET, LITTLE_ENDIAN);
    }
}
