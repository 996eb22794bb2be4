package io.understudy.aeron;

import io.aeron.ChannelUri;
import io.understudy.engine.link.Hello;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Exact layouts of the wire schema: field offsets and byte order as drawn in the Javadoc, and the header checks. */
class WireCodecTest
{
    private final UnsafeBuffer buffer = new UnsafeBuffer(ByteBuffer.allocateDirect(2048));
    private final MessageHeader header = new MessageHeader();

    @Test
    void requestLayoutIsLittleEndianAtTheDrawnOffsets()
    {
        header.wrap(buffer, 0).encode(WireProtocol.WRITE);
        new RequestFlyweight().wrap(buffer, MessageHeader.LENGTH).encode(0x0102030405060708L, 4096, 512, 1);
        final ByteBuffer bytes = buffer.byteBuffer().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(RequestFlyweight.BLOCK_LENGTH, bytes.getShort(0));
        assertEquals(WireProtocol.WRITE, bytes.getShort(2));
        assertEquals(WireProtocol.SCHEMA_ID, bytes.getShort(4));
        assertEquals(WireProtocol.VERSION, bytes.getShort(6));
        assertEquals(0x08, bytes.get(8));
        assertEquals(0x0102030405060708L, bytes.getLong(8));
        assertEquals(4096, bytes.getLong(16));
        assertEquals(512, bytes.getLong(24));
        assertEquals(1, bytes.getInt(32));
        final RequestFlyweight decoded = new RequestFlyweight().wrap((DirectBuffer)buffer, 8);
        assertEquals(0x0102030405060708L, decoded.cookie());
        assertEquals(4096, decoded.diskOffset());
        assertEquals(512, decoded.length());
        assertEquals(1, decoded.flags());
        assertEquals(MessageHeader.Verdict.OK, MessageHeader.check(header, 40));
    }

    @Test
    void helloRoundTripKeepsFrozenFieldsInPlace()
    {
        final Hello hello = new Hello(1L << 30, 65536, true, -7L, 42, 100, 1000);
        header.wrap(buffer, 0).encode(WireProtocol.HELLO);
        final int length = MessageHeader.LENGTH + new HelloFlyweight().wrap(buffer, MessageHeader.LENGTH)
            .encode(hello, 1002, "aeron:udp?endpoint=127.0.0.1:40123");
        final ByteBuffer bytes = buffer.byteBuffer().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1002, bytes.getInt(8));
        assertEquals(-7L, bytes.getLong(8 + 16));
        assertEquals(34, bytes.getShort(8 + HelloFlyweight.BLOCK_LENGTH));
        final HelloFlyweight decoded = new HelloFlyweight().wrap((DirectBuffer)buffer, 8);
        assertEquals(hello, decoded.hello());
        assertEquals("aeron:udp?endpoint=127.0.0.1:40123", decoded.replyChannel(header.blockLength(), length));
        assertEquals(MessageHeader.Verdict.OK, MessageHeader.check(header, length));
    }

    @Test
    void controlAndAckRoundTrip()
    {
        header.wrap(buffer, 0).encode(WireProtocol.BARRIER_DONE);
        final ControlFlyweight control = new ControlFlyweight().wrap(buffer, 8);
        control.encode(9, 10, 11, -110);
        final int length = 8 + ControlFlyweight.BLOCK_LENGTH +
            ControlFlyweight.putText(buffer, 8 + ControlFlyweight.BLOCK_LENGTH, "timed out");
        assertEquals(9, control.id());
        assertEquals(10, control.epoch());
        assertEquals(11, control.value());
        assertEquals(-110, control.code());
        assertEquals("timed out", ControlFlyweight.getText(buffer, 8 + ControlFlyweight.BLOCK_LENGTH, length));
        assertEquals("", ControlFlyweight.getText(buffer, 8 + ControlFlyweight.BLOCK_LENGTH, length - 1));

        header.encode(WireProtocol.ACK);
        new AckFlyweight().wrap(buffer, 8).encode(77, -5);
        final AckFlyweight ack = new AckFlyweight().wrap((DirectBuffer)buffer, 8);
        assertEquals(77, ack.cookie());
        assertEquals(-5, ack.result());
    }

    @Test
    void headerCheckNamesWhatIsWrong()
    {
        header.wrap(buffer, 0).encode(WireProtocol.ACK, 2);
        assertEquals(MessageHeader.Verdict.VERSION, MessageHeader.check(header, AckFlyweight.MESSAGE_LENGTH));
        header.encode(WireProtocol.ACK);
        assertEquals(MessageHeader.Verdict.TOO_SHORT, MessageHeader.check(header, 7));
        assertEquals(MessageHeader.Verdict.BLOCK_LENGTH, MessageHeader.check(header, AckFlyweight.MESSAGE_LENGTH - 1));
        buffer.putShort(4, (short)0x4242);
        assertEquals(MessageHeader.Verdict.SCHEMA, MessageHeader.check(header, AckFlyweight.MESSAGE_LENGTH));
        header.encode(99);
        assertEquals(MessageHeader.Verdict.TEMPLATE, MessageHeader.check(header, AckFlyweight.MESSAGE_LENGTH));
    }

    @Test
    void channelsParseAndRefuse()
    {
        final AeronChannel udp = AeronChannel.parse("aeron:udp?endpoint=127.0.0.1:40456");
        assertEquals("127.0.0.1", udp.host());
        final ChannelUri published = ChannelUri.parse(udp.publicationChannel());
        assertEquals("127.0.0.1:40456", published.get("endpoint"));
        assertEquals("65504", published.get("mtu"), "loopback carries the largest UDP payload unfragmented");
        assertEquals("16777216", published.get("term-length"));
        assertEquals("8192", ChannelUri.parse(AeronChannel.parse("aeron:udp?endpoint=10.1.2.3:40456")
            .publicationChannel()).get("mtu"));
        assertEquals("1408", ChannelUri.parse(AeronChannel.parse("aeron:udp?endpoint=127.0.0.1:40456|mtu=1408")
            .publicationChannel()).get("mtu"), "the URI's own MTU is kept");
        assertTrue(AeronChannel.parse("aeron:ipc").isIpc());
        assertEquals("65504", ChannelUri.parse(AeronChannel.parse("aeron:ipc").publicationChannel()).get("mtu"));
        assertEquals("8192", ChannelUri.parse(AeronChannel.parse("aeron:ipc?term-length=64k")
            .publicationChannel()).get("mtu"), "at most the largest message of a short term");
        assertThrows(IllegalArgumentException.class,
            () -> AeronChannel.parse("aeron:udp?interface=127.0.0.1"));
        assertThrows(IllegalArgumentException.class,
            () -> AeronChannel.parse("tcp://host:1"));
    }
}
