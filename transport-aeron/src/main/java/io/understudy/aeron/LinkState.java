package io.understudy.aeron;

import io.understudy.engine.link.PeerControl;
import io.understudy.engine.link.PeerControl.Listener;
import io.understudy.engine.link.PeerControl.State;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The life cycle of one Aeron link, the same on both sides: {@code UP -> LOST | GONE | CLOSED}, never back, with
 * the reason and the time the peer was last heard from.
 * <p>
 * The transition is a CAS, so exactly one of "heartbeat timeout", "peer said goodbye" and "we closed" wins and the
 * listener hears about it once. The listener runs on a thread of its own: it may close the link, which joins the
 * agent thread that detected the event.
 */
final class LinkState
{
    private final AtomicReference<State> state = new AtomicReference<>(State.UP);
    private final Listener listener;
    private final String peerName;
    private volatile String reason = "";
    /** Written by the agent thread on every message from the peer, read by anyone (volatile: a fresh value). */
    private volatile long lastHeardNanos;

    LinkState(final Listener listener, final String peerName, final long nowNanos)
    {
        this.listener = listener;
        this.peerName = peerName;
        this.lastHeardNanos = nowNanos;
    }

    PeerControl.State state()
    {
        return state.get();
    }

    boolean isUp()
    {
        return state.get() == State.UP;
    }

    String reason()
    {
        return reason;
    }

    String peerName()
    {
        return peerName;
    }

    void heard(final long nowNanos)
    {
        lastHeardNanos = nowNanos;
    }

    long lastHeardNanos()
    {
        return lastHeardNanos;
    }

    long silenceMillis()
    {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastHeardNanos);
    }

    /** UP -> LOST; runs {@code cleanup} and then tells the listener, if this call made the transition. */
    boolean lost(final String why, final Runnable cleanup)
    {
        if (!state.compareAndSet(State.UP, State.LOST))
        {
            return false;
        }
        reason = why;
        cleanup.run();
        Thread.ofPlatform().daemon(true).name("aeron-link-lost").start(() -> listener.onLost(why));
        return true;
    }

    /** UP -> GONE (the peer said goodbye); runs {@code cleanup} and then tells the listener. */
    boolean gone(final boolean failover, final String text, final Runnable cleanup)
    {
        if (!state.compareAndSet(State.UP, State.GONE))
        {
            return false;
        }
        reason = "the peer said goodbye" + (failover ? " (failover)" : "") + ": " + text;
        cleanup.run();
        Thread.ofPlatform().daemon(true).name("aeron-link-goodbye").start(() -> listener.onGoodbye(failover, text));
        return true;
    }

    /** UP -> CLOSED (this side ends the link); nobody is told, the caller knows. */
    boolean closed(final String why)
    {
        if (!state.compareAndSet(State.UP, State.CLOSED))
        {
            return false;
        }
        reason = "this side said goodbye: " + why;
        return true;
    }
}
