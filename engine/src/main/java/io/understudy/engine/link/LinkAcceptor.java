package io.understudy.engine.link;

/**
 * The secondary's decision about a primary's hello, shared by every transport's listening side: refuse with a
 * named reason, or accept and say who hears the link's events.
 */
public interface LinkAcceptor
{
    /** A named refusal. */
    record Refusal(RefusalCode code, String reason)
    {
    }

    /** @return null to accept, else why not. */
    Refusal check(Hello hello);

    /** The listener for a link about to start. */
    PeerControl.Listener listenerFor(Hello hello);

    /** The link is up (after the acceptance was sent). */
    void onLink(PeerControl link, Hello hello);
}
