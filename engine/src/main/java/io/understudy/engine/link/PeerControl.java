package io.understudy.engine.link;

/**
 * One established control link between a primary and a secondary sidecar (after hello and its acceptance), the
 * same contract on both sides and over every transport: heartbeats both ways, the secondary's part of a
 * checkpoint run on the primary's request, and an orderly goodbye.
 * <p>
 * Life cycle: {@code UP -> LOST} (heartbeat timeout, connection or driver broken, protocol error: the listener
 * hears {@link Listener#onLost} once), {@code UP -> GONE} (the peer said goodbye: {@link Listener#onGoodbye}),
 * or {@code UP -> CLOSED} (this side said goodbye or closed). A link never comes back: a new one needs a new
 * hello, so nothing resumes silently.
 */
public interface PeerControl extends AutoCloseable
{
    /** What a link's owner hears; called on one of the link's own threads. */
    interface Listener
    {
        /**
         * Secondary: run the secondary's part of a checkpoint before {@code deadlineNanos}; {@code primaryEpoch}
         * is the epoch the primary is about to close, which must be the secondary's too.
         */
        CheckpointAnswer onCheckpointPrepare(long deadlineNanos, long primaryEpoch);

        /** The peer went silent or the connection broke. */
        void onLost(String reason);

        /** The peer ended the link in order. */
        void onGoodbye(boolean failover, String reason);
    }

    /** The secondary's answer to a checkpoint request: result 0 or a negated errno. */
    record CheckpointAnswer(int result, long epoch, String reason)
    {
    }

    enum State
    {
        UP("up"), LOST("lost"), GONE("peer-goodbye"), CLOSED("closed");

        private final String label;

        State(final String label)
        {
            this.label = label;
        }

        public String label()
        {
            return label;
        }
    }

    State state();

    /** @return why the link is no longer up (empty while up). */
    String reason();

    /** @return milliseconds since the last message from the peer. */
    long silenceMillis();

    /** @return the peer's address, for logs and status. */
    String peerName();

    int heartbeatIntervalMillis();

    int heartbeatTimeoutMillis();

    /**
     * Primary: runs the secondary's part of a checkpoint and waits for its answer until {@code deadlineNanos}.
     * Every write forwarded before this call must have completed on the secondary before it checkpoints.
     *
     * @return the answer; result -ETIMEDOUT at the deadline, -EPIPE if the link is not up.
     */
    CheckpointAnswer checkpointPeer(long deadlineNanos, long primaryEpoch);

    /** Ends the link in order: tells the peer (best effort) and closes. */
    void goodbye(boolean failover, String why);

    /** Says goodbye if still up, then releases the link's resources. */
    @Override
    void close();
}
