package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.link.PeerControl;

/**
 * The primary's connection to its secondary, whatever the transport: the device forwarded writes go to, and the
 * control link (checkpoint coordination, heartbeats). Closing it ends both.
 */
interface PeerConnection extends AutoCloseable
{
    /** @return where forwarded writes go; its size equals the primary's disk. */
    BlockDevice forwarding();

    /** @return the control link, or null if the peer has none (a foreign peer: QEMU or a plain NBD server). */
    PeerControl control();

    /** @return one line for the ready message: where writes go and what the control link is. */
    String describe();

    /** Adds the transport's own figures (name, back-pressure, lag) to {@code status}. */
    void toJson(ObjectNode transport);

    @Override
    void close();
}
