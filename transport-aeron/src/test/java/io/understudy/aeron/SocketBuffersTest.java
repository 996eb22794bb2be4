package io.understudy.aeron;

import io.aeron.driver.MediaDriver;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SocketBuffersTest
{
    @Test
    void theWindowIsHalfTheReceiveBufferUpToOneMebibyte()
    {
        assertEquals(1 << 20, SocketBuffers.window(2 << 20, 8192));
        assertEquals(1 << 20, SocketBuffers.window(4 << 20, 8192));
        assertEquals(106496, SocketBuffers.window(212992, 8192), "a distribution's default rmem_max");
    }

    @Test
    void theHostLimitIsReadWhole() throws Exception
    {
        final String raw = java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/sys/net/core/rmem_max"))
            .getFirst().strip();
        assertEquals(Long.parseLong(raw), SocketBuffers.hostLimit("rmem_max"));
        assertTrue(SocketBuffers.hostLimit("rmem_max") >= 4096, "a real limit, not its first digit");
    }

    @Test
    void anUnreadableHostLimitFallsBackToAeronsDefault()
    {
        assertEquals(SocketBuffers.FALLBACK_BYTES, SocketBuffers.hostLimit("no-such-limit"));
    }

    @Test
    void theDriverNeverAsksForMoreThanTheHostAllows()
    {
        final MediaDriver.Context context = new MediaDriver.Context();
        final int defaultRcvbuf = context.socketRcvbufLength();
        final int defaultSndbuf = context.socketSndbufLength();
        SocketBuffers.apply(context);
        final int rmem = SocketBuffers.hostLimit("rmem_max");
        final int wmem = SocketBuffers.hostLimit("wmem_max");
        final boolean roomy = rmem >= SocketBuffers.FALLBACK_BYTES && wmem >= SocketBuffers.FALLBACK_BYTES;
        assertEquals(roomy ? Math.min(SocketBuffers.DESIRED_BUFFER_BYTES, rmem) : defaultRcvbuf,
            context.socketRcvbufLength());
        assertEquals(roomy ? Math.min(SocketBuffers.DESIRED_BUFFER_BYTES, wmem) : defaultSndbuf,
            context.socketSndbufLength());
        assertTrue(context.initialWindowLength() <= Math.max(context.mtuLength(), context.socketRcvbufLength() / 2));
        context.close();
    }
}
