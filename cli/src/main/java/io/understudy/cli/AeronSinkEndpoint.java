package io.understudy.cli;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.link.LinkAcceptor;

import java.nio.file.Path;
import java.util.function.LongSupplier;

final class AeronSinkEndpoint
{
    static SinkEndpoint listen(
        final AeronUri listen, final Path aeronDir, final BlockDevice sink, final int handshakeTimeoutMillis,
        final LongSupplier epoch, final LinkAcceptor acceptor)
    {
        throw new UserException("aeron: not wired yet");
    }
}
