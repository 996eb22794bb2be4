package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationSecondary;
import io.understudy.nbd.client.NbdClientDevice;
import io.understudy.nbd.server.NbdServer;

import java.io.IOException;
import java.net.InetSocketAddress;

/**
 * {@link DemoLink} over NBD on loopback TCP, as the daemons run it between hosts: an {@link NbdServer} serves the
 * secondary's sink, an {@link NbdClientDevice} is the primary's forwarding device. The checkpoint needs no
 * control link here: the secondary's checkpoint is called directly, while the primary holds the guest.
 */
final class NbdDemoLink implements DemoLink
{
    private static final String EXPORT = "colo0";
    private static final String HOST = "127.0.0.1";

    private final ReplicationSecondary secondary;
    private final NbdServer server;
    private final NbdClientDevice client;
    private final PowerCut forwarding;
    private final ReplicationPrimary.PeerCheckpoint peerCheckpoint;
    private boolean closed;

    private NbdDemoLink(final ReplicationSecondary secondary, final NbdServer server, final NbdClientDevice client)
    {
        this.secondary = secondary;
        this.server = server;
        this.client = client;
        this.forwarding = new PowerCut(client);
        this.peerCheckpoint = this::checkpointSecondary;
    }

    static NbdDemoLink open(final ReplicationSecondary secondary) throws IOException
    {
        final NbdServer server = new NbdServer(new NbdServer.Context().exportName(EXPORT)
            .description("understudy demo forwarding sink").device(secondary.sink()));
        try
        {
            server.bindTcp(HOST, 0);
            server.start();
            return new NbdDemoLink(secondary, server,
                NbdClientDevice.connect(new InetSocketAddress(HOST, server.tcpPort()), EXPORT));
        }
        catch (final IOException | RuntimeException e)
        {
            server.close();
            throw e;
        }
    }

    @Override
    public BlockDevice forwarding()
    {
        return forwarding;
    }

    @Override
    public ReplicationPrimary.PeerCheckpoint peerCheckpoint()
    {
        return peerCheckpoint;
    }

    /** Cuts the forwarding device, then closes the client: it waits for the answers to what was on the wire. */
    @Override
    public void sever()
    {
        forwarding.cut();
        closeClient();
    }

    @Override
    public String description()
    {
        return "nbd tcp " + HOST + ":" + server.tcpPort();
    }

    @Override
    public void close()
    {
        closeClient();
        server.close();
    }

    private void closeClient()
    {
        if (!closed)
        {
            closed = true;
            client.close();
        }
    }

    private int checkpointSecondary(final long deadlineNanos)
    {
        return secondary.checkpoint(Math.max(0, deadlineNanos - System.nanoTime())).result();
    }
}
