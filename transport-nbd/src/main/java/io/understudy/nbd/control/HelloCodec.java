package io.understudy.nbd.control;

import io.understudy.engine.link.Hello;

import java.nio.ByteBuffer;

/** The HELLO payload of {@link ControlProtocol} version 1 (layout drawn there). */
final class HelloCodec
{
    static final int LENGTH = 8 + 4 + 1 + 8 + 8 + 4 + 4;

    private HelloCodec()
    {
    }

    static void encode(final Hello hello, final ByteBuffer buffer)
    {
        buffer.putLong(hello.diskSize()).putInt(hello.clusterSize()).put((byte)(hello.shared() ? 1 : 0))
            .putLong(hello.generationId()).putLong(hello.epoch()).putInt(hello.heartbeatIntervalMillis())
            .putInt(hello.heartbeatTimeoutMillis());
    }

    static Hello decode(final ByteBuffer buffer)
    {
        return new Hello(buffer.getLong(), buffer.getInt(), buffer.get() != 0, buffer.getLong(), buffer.getLong(),
            buffer.getInt(), buffer.getInt());
    }
}
