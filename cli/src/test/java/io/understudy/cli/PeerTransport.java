package io.understudy.cli;

import java.util.List;
import java.util.regex.Matcher;

/**
 * The forwarding transports the process tests run over, and the one place that knows how each is spelled on the
 * command line: the secondary's {@code --listen} value, the line a ready secondary prints, and the primary's
 * {@code --peer}/{@code --peer-control} values read back from that line. A new transport is a new constant here;
 * the suites parameterised over this enum then run against it unchanged.
 */
enum PeerTransport
{
    /** Forwarded writes as NBD requests on TCP; the sink is a plain NBD export any NBD client can write to. */
    NBD("nbd://127.0.0.1:%d/colo",
        "secondary ready .*forwarding sink nbd://127\\.0\\.0\\.1:(\\d+)/colo, control link 127\\.0\\.0\\.1:(\\d+)",
        true);

    /** The secondary's sink and control link as the primary is told them, read from the ready line. */
    record Peer(String uri, String control, boolean plainNbd)
    {
        List<String> args()
        {
            return List.of("--peer", uri, "--peer-control", control);
        }

        /** The sink as an NBD URI for qemu-io or nbdsh playing a foreign primary; only for a plain NBD sink. */
        String nbdUri()
        {
            if (!plainNbd)
            {
                throw new IllegalStateException(uri + " is not a plain NBD export");
            }
            return uri;
        }
    }

    private final String uriFormat;
    private final String readyLine;
    private final boolean plainNbd;

    PeerTransport(final String uriFormat, final String readyLine, final boolean plainNbd)
    {
        this.uriFormat = uriFormat;
        this.readyLine = readyLine;
        this.plainNbd = plainNbd;
    }

    /** {@code --listen} on free ports, printed in the ready line. */
    String listen()
    {
        return listen(0);
    }

    /** {@code --listen} on {@code port}; the control link takes the next port. */
    String listen(final int port)
    {
        return uriFormat.formatted(port);
    }

    /** Regex of the secondary's ready line; {@link #peer(Matcher)} reads the match. */
    String readyLine()
    {
        return readyLine;
    }

    /** The primary's view of a secondary whose ready line matched {@link #readyLine()}. */
    Peer peer(final Matcher ready)
    {
        return new Peer(uriFormat.formatted(Integer.parseInt(ready.group(1))), "127.0.0.1:" + ready.group(2),
            plainNbd);
    }

    /** A secondary listening on {@code port} (control link on port + 1, the default), before it is ready. */
    Peer peer(final int port)
    {
        return new Peer(uriFormat.formatted(port), "127.0.0.1:" + (port + 1), plainNbd);
    }

    /** Whether a plain NBD client can play the forwarding primary against this transport's sink. */
    boolean plainNbdSink()
    {
        return plainNbd;
    }
}
