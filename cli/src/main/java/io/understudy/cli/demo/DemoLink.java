package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationSecondary;

import java.io.IOException;

/**
 * The demo's link from the primary to the secondary, both in this process: the device the primary forwards
 * writes (and, in shared mode, COW originals) into, and the secondary's part of a coordinated checkpoint. The
 * transport is chosen in {@link #open}, the one place a new transport is added.
 */
interface DemoLink extends AutoCloseable
{
    /**
     * Opens a link to {@code secondary}'s forwarding sink over {@code transport}.
     *
     * @throws IOException if the transport cannot be set up.
     */
    static DemoLink open(final DemoTransport transport, final ReplicationSecondary secondary) throws IOException
    {
        return switch (transport)
        {
            case NBD -> NbdDemoLink.open(secondary);
            case AERON -> AeronDemoLink.open(secondary);
        };
    }

    /** @return the secondary's sink as the primary sees it; not owned by the caller. */
    BlockDevice forwarding();

    /** @return the secondary's part of a checkpoint, run by the primary while the guest is held. */
    ReplicationPrimary.PeerCheckpoint peerCheckpoint();

    /**
     * The primary crashed: from now on nothing it sends reaches the secondary; returns once what it had already
     * sent has been answered, so nothing of the dead primary can still arrive afterwards.
     */
    void sever();

    /** @return a short description for the summary, e.g. {@code nbd tcp 127.0.0.1:41234}. */
    String description();

    /** Closes the transport (after {@link #sever} or a clean end). */
    @Override
    void close();
}
