package io.understudy.cli;

import io.understudy.engine.link.Hello;
import io.understudy.engine.link.PeerControl;

import java.nio.file.Path;
import java.util.function.LongSupplier;

final class AeronPeerConnection
{
    static PeerConnection connect(
        final AeronUri peer, final Path aeronDir, final Hello hello, final long connectTimeoutMillis,
        final LongSupplier epoch, final PeerControl.Listener listener)
    {
        throw new UserException("aeron: not wired yet");
    }
}
