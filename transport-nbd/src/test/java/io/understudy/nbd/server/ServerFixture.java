package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.function.UnaryOperator;

/** A server in this JVM exporting a real sparse file through {@link ThreadPoolIoEngine}, on a Unix socket. */
final class ServerFixture implements AutoCloseable
{
    static final String EXPORT = "disk";

    final Path file;
    final Path socket;
    final ThreadPoolIoEngine engine;
    final BlockDevice device;
    final NbdServer server;

    ServerFixture(final Path dir, final long size, final int workers, final boolean readOnly) throws IOException
    {
        this(dir, size, workers, readOnly, UnaryOperator.identity());
    }

    ServerFixture(
        final Path dir, final long size, final int workers, final boolean readOnly,
        final UnaryOperator<NbdServer.Context> configure) throws IOException
    {
        file = dir.resolve("disk.img");
        socket = dir.resolve("nbd.sock");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(size);
        }
        engine = new ThreadPoolIoEngine(workers);
        device = engine.open(file, readOnly ? FileOptions.readOnlyFile() : FileOptions.readWrite());
        server = new NbdServer(configure.apply(new NbdServer.Context()
            .exportName(EXPORT).description("test disk").device(device).readOnly(readOnly)
            .payloadBudgetBytes(8 << 20)));
        server.bindUnix(socket);
        server.start();
    }

    String uri()
    {
        return "nbd+unix:///" + EXPORT + "?socket=" + socket;
    }

    RawClient connect() throws IOException
    {
        return RawClient.connect(socket);
    }

    /** Connects, negotiates structured replies and base:allocation if asked, and enters transmission. */
    RawClient transmission(final boolean structured) throws IOException
    {
        final RawClient client = connect();
        client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE | RawClient.CLIENT_NO_ZEROES);
        if (structured)
        {
            client.structuredReplies();
            client.setMetaContext(EXPORT, "base:allocation");
        }
        client.go(EXPORT);
        return client;
    }

    @Override
    public void close()
    {
        server.close();
        device.close();
        engine.close();
    }
}
