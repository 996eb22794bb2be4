package io.understudy.aeron;

import io.understudy.engine.link.Hello;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

/**
 * Flyweight over the block of HELLO ({@link WireProtocol}), the primary's {@link Hello} plus where to answer:
 * <pre>
 *   0                               32                              64 bits
 *   +-------------------------------+-------------------------------+
 *   | reply stream id i32 (frozen)  | cluster size u32              |
 *   +-------------------------------+-------------------------------+
 *   | disk size                                              u64    |
 *   +---------------------------------------------------------------+
 *   | generation id (frozen)                                 u64    |
 *   +---------------------------------------------------------------+
 *   | epoch                                                  u64    |
 *   +-------------------------------+-------------------------------+
 *   | heartbeat interval ms u32     | heartbeat timeout ms u32      |
 *   +-------------------------------+-------------------------------+
 *   | flags u32 (bit 0: shared)     | reserved u32                  |
 *   +-------------------------------+-------------------------------+
 *   | reply channel: u16 LE length + ASCII, at blockLength (frozen)
 *   +------------------------------------
 * </pre>
 * The reply stream id, the generation id and the reply channel stay where they are in every version, so a
 * secondary can refuse a HELLO of a version it does not speak, on the channel the primary listens on and with the
 * generation the primary waits for.
 */
public final class HelloFlyweight
{
    public static final int BLOCK_LENGTH = 48;

    private static final int REPLY_STREAM_OFFSET = 0;
    private static final int CLUSTER_SIZE_OFFSET = 4;
    private static final int DISK_SIZE_OFFSET = 8;
    private static final int GENERATION_OFFSET = 16;
    private static final int EPOCH_OFFSET = 24;
    private static final int INTERVAL_OFFSET = 32;
    private static final int TIMEOUT_OFFSET = 36;
    private static final int FLAGS_OFFSET = 40;
    private static final int RESERVED_OFFSET = 44;
    private static final int FLAG_SHARED = 1;

    private DirectBuffer buffer;
    private MutableDirectBuffer mutable;
    private int offset;

    public HelloFlyweight wrap(final DirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = null;
        this.offset = offset;
        return this;
    }

    public HelloFlyweight wrap(final MutableDirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = buffer;
        this.offset = offset;
        return this;
    }

    /**
     * Writes the block and the reply channel after it.
     *
     * @return the bytes written after the header (block and channel).
     */
    public int encode(final Hello hello, final int replyStreamId, final String replyChannel)
    {
        mutable.putInt(offset + REPLY_STREAM_OFFSET, replyStreamId, LITTLE_ENDIAN);
        mutable.putInt(offset + CLUSTER_SIZE_OFFSET, hello.clusterSize(), LITTLE_ENDIAN);
        mutable.putLong(offset + DISK_SIZE_OFFSET, hello.diskSize(), LITTLE_ENDIAN);
        mutable.putLong(offset + GENERATION_OFFSET, hello.generationId(), LITTLE_ENDIAN);
        mutable.putLong(offset + EPOCH_OFFSET, hello.epoch(), LITTLE_ENDIAN);
        mutable.putInt(offset + INTERVAL_OFFSET, hello.heartbeatIntervalMillis(), LITTLE_ENDIAN);
        mutable.putInt(offset + TIMEOUT_OFFSET, hello.heartbeatTimeoutMillis(), LITTLE_ENDIAN);
        mutable.putInt(offset + FLAGS_OFFSET, hello.shared() ? FLAG_SHARED : 0, LITTLE_ENDIAN);
        mutable.putInt(offset + RESERVED_OFFSET, 0, LITTLE_ENDIAN);
        return BLOCK_LENGTH + ControlFlyweight.putText(mutable, offset + BLOCK_LENGTH, replyChannel);
    }

    public long generationId()
    {
        return buffer.getLong(offset + GENERATION_OFFSET, LITTLE_ENDIAN);
    }

    public int replyStreamId()
    {
        return buffer.getInt(offset + REPLY_STREAM_OFFSET, LITTLE_ENDIAN);
    }

    /** @return the reply channel, found at {@code blockLength} (from the header) after the block's start. */
    public String replyChannel(final int blockLength, final int limit)
    {
        return ControlFlyweight.getText(buffer, offset + blockLength, limit);
    }

    /** @return the primary's hello (a control-path object, made once per handshake). */
    public Hello hello()
    {
        return new Hello(
            buffer.getLong(offset + DISK_SIZE_OFFSET, LITTLE_ENDIAN),
            buffer.getInt(offset + CLUSTER_SIZE_OFFSET, LITTLE_ENDIAN),
            (buffer.getInt(offset + FLAGS_OFFSET, LITTLE_ENDIAN) & FLAG_SHARED) != 0,
            buffer.getLong(offset + GENERATION_OFFSET, LITTLE_ENDIAN),
            buffer.getLong(offset + EPOCH_OFFSET, LITTLE_ENDIAN),
            buffer.getInt(offset + INTERVAL_OFFSET, LITTLE_ENDIAN),
            buffer.getInt(offset + TIMEOUT_OFFSET, LITTLE_ENDIAN));
    }
}
