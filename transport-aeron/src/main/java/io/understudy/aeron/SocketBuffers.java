package io.understudy.aeron;

import io.aeron.driver.MediaDriver;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * UDP socket buffers and receiver window of an embedded or standalone driver. With Aeron's defaults (128 KiB
 * buffers and window) a loopback pair dropped 400-700 datagrams per 10 s of replicated 4 KiB or 1 MiB writes for a
 * full receive buffer, each drop costing a NAK and a retransmission; with 2 MiB buffers and a 1 MiB window it
 * dropped none, and 1 MiB sequential writes went from 140-220 to about 310 MiB/s.
 * <p>
 * Linux caps a socket's buffer at {@code net.core.rmem_max} / {@code wmem_max} (208 KiB on many distributions),
 * and Aeron warns on stderr when it gets less than it asked for, so the request is clamped to the host's limit and
 * the window to half the receive buffer (a window larger than the buffer drops by design). On such a host the
 * transport works as with the defaults; raising both limits to 2 MiB gives it the room measured above.
 */
final class SocketBuffers
{
    static final int DESIRED_BUFFER_BYTES = 2 << 20;
    static final int DESIRED_WINDOW_BYTES = 1 << 20;
    /** Aeron's own default, used where the host's limit cannot be read. */
    static final int FALLBACK_BYTES = 128 << 10;

    private SocketBuffers()
    {
    }

    /**
     * Sets the buffers and the window on a driver context, within this host's limits; a host that does not even
     * allow Aeron's defaults keeps them (and Aeron's warning).
     */
    static void apply(final MediaDriver.Context context)
    {
        final int rcvbuf = Math.min(DESIRED_BUFFER_BYTES, hostLimit("rmem_max"));
        final int sndbuf = Math.min(DESIRED_BUFFER_BYTES, hostLimit("wmem_max"));
        if (rcvbuf < FALLBACK_BYTES || sndbuf < FALLBACK_BYTES)
        {
            return;
        }
        context.socketRcvbufLength(rcvbuf)
            .socketSndbufLength(sndbuf)
            .initialWindowLength(window(rcvbuf, context.mtuLength()));
    }

    /** @return the receiver window for a receive buffer of at least 128 KiB: half of it, at most 1 MiB. */
    static int window(final int rcvbuf, final int mtu)
    {
        return Math.max(mtu, Math.min(DESIRED_WINDOW_BYTES, rcvbuf / 2));
    }

    /**
     * @return {@code /proc/sys/net/core/NAME}, or Aeron's default if it cannot be read. Read as lines: procfs reports
     *         a size of 0, and {@code Files.readString} returned only the first byte of "4194304" on our hosts.
     */
    static int hostLimit(final String name)
    {
        try
        {
            final List<String> lines = Files.readAllLines(Path.of("/proc/sys/net/core", name),
                StandardCharsets.US_ASCII);
            return lines.isEmpty() ? FALLBACK_BYTES :
                (int)Math.min(Integer.MAX_VALUE, Long.parseLong(lines.getFirst().strip()));
        }
        catch (final IOException | NumberFormatException ex)
        {
            return FALLBACK_BYTES;
        }
    }
}
