package io.understudy.cli;

import io.understudy.engine.device.BlockDevice;
import io.understudy.nbd.server.NbdServer;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;

/** Starting the NBD exports of the replication daemons. */
final class Exports
{
    private Exports()
    {
    }

    /**
     * The VM-facing export on a unix socket, under {@code name} and the empty name; {@code disk} labels its counters
     * in a sidecar of several disks (else null).
     */
    static NbdServer unix(
        final BlockDevice device, final String name, final Path socket, final PrintWriter out,
        final DaemonCounters counters, final String disk)
    {
        if (UnixSockets.removeIfStale(socket))
        {
            out.printf("understudy: removed stale socket %s (nobody was listening)%n", socket);
        }
        final NbdServer server = new NbdServer(new NbdServer.Context().exportName(name)
            .description("understudy " + name).device(device).errorHandler(counters.errorHandler()));
        try
        {
            server.bindUnix(socket);
            server.start();
            counters.nbd(server, name, disk);
            return server;
        }
        catch (final IOException e)
        {
            server.close();
            throw new UserException(socket + ": " + e.getMessage(), e);
        }
    }

    /** The forwarding sink on TCP, under the export name of the listen URI; {@code disk} as for {@link #unix}. */
    static NbdServer tcp(
        final BlockDevice device, final NbdUri listen, final DaemonCounters counters, final String disk)
    {
        final NbdServer server = new NbdServer(new NbdServer.Context().exportName(listen.export())
            .description("understudy forwarding sink").device(device).errorHandler(counters.errorHandler()));
        try
        {
            server.bindTcp(listen.host(), listen.port());
            server.start();
            counters.nbd(server, listen.export(), disk);
            return server;
        }
        catch (final IOException e)
        {
            server.close();
            throw new UserException(listen + ": " + e.getMessage(), e);
        }
    }
}
