package io.understudy.aeron;

import java.util.concurrent.TimeUnit;

/**
 * Settings of an Aeron link, both sides, with defaults as named constants; {@link #conclude()} validates them.
 * Heartbeat interval and timeout are not here: the primary proposes them in its {@code Hello} and both sides use
 * them, as over NBD.
 */
public final class AeronLinkContext
{
    /** Forwarded requests in flight on the primary. */
    public static final int DEFAULT_QUEUE_DEPTH = 128;
    /** Largest WRITE payload per message; longer writes travel in parts (also bounded by term length / 8). */
    public static final int DEFAULT_MAX_PART_LENGTH = 256 << 10;
    /** Requests applied to the sink at once on the secondary, each with a part-sized buffer. */
    public static final int DEFAULT_SINK_SLOTS = 64;
    /** How long a guest write waits for a back-pressured publication before the submit reports back-pressure. */
    public static final long DEFAULT_BACK_PRESSURE_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    /**
     * How long a later part of a write already under way waits for back-pressure to clear: a started write cannot
     * be withdrawn, so it waits longer than the first part before it fails with EAGAIN.
     */
    public static final long DEFAULT_PART_WAIT_NANOS = TimeUnit.SECONDS.toNanos(5);
    /** Deadline of the primary's connect and handshake, and of the secondary's answer to a HELLO. */
    public static final long DEFAULT_HANDSHAKE_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);

    private int queueDepth = DEFAULT_QUEUE_DEPTH;
    private int maxPartLength = DEFAULT_MAX_PART_LENGTH;
    private int sinkSlots = DEFAULT_SINK_SLOTS;
    private long backPressureWaitNanos = DEFAULT_BACK_PRESSURE_WAIT_NANOS;
    private long partWaitNanos = DEFAULT_PART_WAIT_NANOS;
    private long handshakeTimeoutNanos = DEFAULT_HANDSHAKE_TIMEOUT_NANOS;
    private String replyHost;

    public AeronLinkContext queueDepth(final int queueDepth)
    {
        this.queueDepth = queueDepth;
        return this;
    }

    public int queueDepth()
    {
        return queueDepth;
    }

    public AeronLinkContext maxPartLength(final int maxPartLength)
    {
        this.maxPartLength = maxPartLength;
        return this;
    }

    public int maxPartLength()
    {
        return maxPartLength;
    }

    public AeronLinkContext sinkSlots(final int sinkSlots)
    {
        this.sinkSlots = sinkSlots;
        return this;
    }

    public int sinkSlots()
    {
        return sinkSlots;
    }

    public AeronLinkContext backPressureWaitNanos(final long backPressureWaitNanos)
    {
        this.backPressureWaitNanos = backPressureWaitNanos;
        return this;
    }

    public long backPressureWaitNanos()
    {
        return backPressureWaitNanos;
    }

    public AeronLinkContext partWaitNanos(final long partWaitNanos)
    {
        this.partWaitNanos = partWaitNanos;
        return this;
    }

    public long partWaitNanos()
    {
        return partWaitNanos;
    }

    public AeronLinkContext handshakeTimeoutNanos(final long handshakeTimeoutNanos)
    {
        this.handshakeTimeoutNanos = handshakeTimeoutNanos;
        return this;
    }

    public long handshakeTimeoutNanos()
    {
        return handshakeTimeoutNanos;
    }

    /**
     * The primary's address the secondary answers to over UDP (null: the local address the host routes to the
     * secondary with). The port is always ephemeral.
     */
    public AeronLinkContext replyHost(final String replyHost)
    {
        this.replyHost = replyHost;
        return this;
    }

    public String replyHost()
    {
        return replyHost;
    }

    /** @throws IllegalArgumentException naming the first bad setting. */
    public AeronLinkContext conclude()
    {
        if (queueDepth <= 0 || queueDepth > 1 << 16)
        {
            throw new IllegalArgumentException("queue depth must be in [1, 65536]: " + queueDepth);
        }
        if (maxPartLength < 4096)
        {
            throw new IllegalArgumentException("max part length must be at least 4096: " + maxPartLength);
        }
        if (sinkSlots <= 0)
        {
            throw new IllegalArgumentException("sink slots must be positive: " + sinkSlots);
        }
        if (backPressureWaitNanos < 0 || partWaitNanos < backPressureWaitNanos || handshakeTimeoutNanos <= 0)
        {
            throw new IllegalArgumentException("back-pressure wait must be >= 0, the part wait at least as long, " +
                "the handshake timeout positive");
        }
        return this;
    }
}
