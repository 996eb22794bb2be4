package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The secondary's listening side of the replication link, whatever the transport: it applies the primary's
 * forwarded writes to the secondary's sink and hands each primary's hello to the daemon's acceptor. Closing it
 * stops accepting and ends the current link.
 */
interface SinkEndpoint extends AutoCloseable
{
    /** @return one line for the ready message: where the sink and the control link are reached. */
    String describe();

    /** Adds the transport's own figures (name, messages applied, refusals) to {@code status}. */
    void toJson(ObjectNode transport);

    @Override
    void close();
}
