package io.understudy.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.link.PeerControl;

/**
 * What a daemon knows about its peer's control link, for {@code status}: {@code none} (no Understudy peer
 * linked yet), {@code foreign} (the peer answers NBD but no control link: QEMU or a plain NBD server), or the
 * state of the current link ({@code up}, {@code lost}, {@code peer-goodbye}, {@code closed}) with its reason.
 */
final class PeerStatus
{
    static final String NONE = "none";
    static final String FOREIGN = "foreign";

    private volatile PeerControl link;
    private volatile String label = NONE;
    private volatile String reason = "";

    void link(final PeerControl current)
    {
        link = current;
    }

    PeerControl link()
    {
        return link;
    }

    /** @return true if an Understudy peer is linked and its heartbeats arrive. */
    boolean isUp()
    {
        final PeerControl current = link;
        return current != null && current.state() == PeerControl.State.UP;
    }

    void foreign(final String why)
    {
        label = FOREIGN;
        reason = why;
    }

    /** Says goodbye on the current link, if it is up. */
    void goodbye(final boolean failover, final String why)
    {
        final PeerControl current = link;
        if (current != null)
        {
            current.goodbye(failover, why);
        }
    }

    /** @return what {@code status} shows as the peer's link: none, foreign, or the current link's state. */
    String label()
    {
        final PeerControl current = link;
        return current == null ? label : current.state().label();
    }

    void toJson(final ObjectNode node)
    {
        final PeerControl current = link;
        if (current == null)
        {
            node.put("link", label).put("reason", reason);
            return;
        }
        node.put("link", current.state().label())
            .put("reason", current.reason())
            .put("address", current.peerName())
            .put("silence-ms", current.silenceMillis())
            .put("heartbeat-interval-ms", current.heartbeatIntervalMillis())
            .put("heartbeat-timeout-ms", current.heartbeatTimeoutMillis());
    }
}
