package io.understudy.aeron;

import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

import static java.nio.ByteOrder.LITTLE_ENDIAN;

/**
 * Flyweight over the 8-byte header that starts every message of {@link WireProtocol} (SBE's message header):
 * <pre>
 *   0               16              32              48              64 bits
 *   +---------------+---------------+---------------+---------------+
 *   | blockLength   | templateId    | schemaId      | version       |
 *   | u16 LE        | u16 LE        | u16 LE        | u16 LE        |
 *   +---------------+---------------+---------------+---------------+
 * </pre>
 * {@code blockLength} is the length of the fixed block that follows, so a receiver can find variable data even
 * in a message from a newer compatible version. Wrap once, reuse for every message: no allocation.
 */
public final class MessageHeader
{
    public static final int LENGTH = 8;

    /** What {@link #check} found. */
    public enum Verdict
    {
        OK, TOO_SHORT, SCHEMA, VERSION, TEMPLATE, BLOCK_LENGTH
    }

    private static final int BLOCK_LENGTH_OFFSET = 0;
    private static final int TEMPLATE_ID_OFFSET = 2;
    private static final int SCHEMA_ID_OFFSET = 4;
    private static final int VERSION_OFFSET = 6;

    private DirectBuffer buffer;
    private MutableDirectBuffer mutable;
    private int offset;

    public MessageHeader wrap(final DirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = null;
        this.offset = offset;
        return this;
    }

    public MessageHeader wrap(final MutableDirectBuffer buffer, final int offset)
    {
        this.buffer = buffer;
        this.mutable = buffer;
        this.offset = offset;
        return this;
    }

    /** Writes a header of this schema and version for {@code templateId}. */
    public MessageHeader encode(final int templateId)
    {
        return encode(templateId, WireProtocol.VERSION);
    }

    /** Writes a header with an explicit version (tests send foreign versions with it). */
    public MessageHeader encode(final int templateId, final int version)
    {
        mutable.putShort(offset + BLOCK_LENGTH_OFFSET, (short)WireProtocol.blockLength(templateId), LITTLE_ENDIAN);
        mutable.putShort(offset + TEMPLATE_ID_OFFSET, (short)templateId, LITTLE_ENDIAN);
        mutable.putShort(offset + SCHEMA_ID_OFFSET, (short)WireProtocol.SCHEMA_ID, LITTLE_ENDIAN);
        mutable.putShort(offset + VERSION_OFFSET, (short)version, LITTLE_ENDIAN);
        return this;
    }

    public int blockLength()
    {
        return buffer.getShort(offset + BLOCK_LENGTH_OFFSET, LITTLE_ENDIAN) & 0xFFFF;
    }

    public int templateId()
    {
        return buffer.getShort(offset + TEMPLATE_ID_OFFSET, LITTLE_ENDIAN) & 0xFFFF;
    }

    public int schemaId()
    {
        return buffer.getShort(offset + SCHEMA_ID_OFFSET, LITTLE_ENDIAN) & 0xFFFF;
    }

    public int version()
    {
        return buffer.getShort(offset + VERSION_OFFSET, LITTLE_ENDIAN) & 0xFFFF;
    }

    /** @return the offset of the block, right after the header. */
    public int blockOffset()
    {
        return offset + LENGTH;
    }

    /**
     * Decides whether a message of {@code length} bytes starting at the wrapped offset is one this version can
     * read: the header is complete, schema and version are ours, the template is known and its block is no
     * shorter than this version's and lies inside the message.
     */
    public static Verdict check(final MessageHeader header, final int length)
    {
        if (length < LENGTH)
        {
            return Verdict.TOO_SHORT;
        }
        if (header.schemaId() != WireProtocol.SCHEMA_ID)
        {
            return Verdict.SCHEMA;
        }
        if (header.version() != WireProtocol.VERSION)
        {
            return Verdict.VERSION;
        }
        final int expected = WireProtocol.blockLength(header.templateId());
        if (expected < 0)
        {
            return Verdict.TEMPLATE;
        }
        if (header.blockLength() < expected || LENGTH + header.blockLength() > length)
        {
            return Verdict.BLOCK_LENGTH;
        }
        return Verdict.OK;
    }
}
