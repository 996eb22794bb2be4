package io.understudy.aeron;

import io.aeron.driver.MediaDriver;
import io.aeron.driver.media.SendChannelEndpoint;
import io.aeron.driver.media.UdpChannel;
import org.agrona.concurrent.status.AtomicCounter;

import java.nio.ByteBuffer;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A send endpoint that reorders: with probability {@code rate} it holds a frame back and sends it right after the
 * next one, so the receiver sees frames out of order (Aeron's debug endpoints only drop frames). Held frames are
 * copied; a frame held when nothing follows is repaired by the receiver's NAK like a lost one.
 */
final class ReorderingSendChannelEndpoint extends SendChannelEndpoint
{
    private final ByteBuffer held = ByteBuffer.allocateDirect(64 << 10);
    private final Random random;
    private final double rate;
    private final AtomicLong reordered;
    private boolean holding;

    ReorderingSendChannelEndpoint(
        final UdpChannel channel, final AtomicCounter statusIndicator, final MediaDriver.Context context,
        final double rate, final long seed, final AtomicLong reordered)
    {
        super(channel, statusIndicator, context);
        this.rate = rate;
        this.random = new Random(seed);
        this.reordered = reordered;
    }

    @Override
    public int send(final ByteBuffer buffer)
    {
        final int length = buffer.remaining();
        if (!holding && length <= held.capacity() && random.nextDouble() < rate)
        {
            held.clear();
            held.put(buffer);
            held.flip();
            holding = true;
            reordered.incrementAndGet();
            return length;
        }
        final int sent = super.send(buffer);
        if (holding)
        {
            holding = false;
            super.send(held);
        }
        return sent;
    }
}
