package io.understudy.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;

/**
 * The forwarding transports the process tests run over, and the one place that knows how each is spelled on the
 * command line: the secondary's {@code --listen} value, the line a ready secondary prints, the primary's
 * {@code --peer} (and {@code --peer-control}) values read back from that line, and the media driver both daemons
 * share for Aeron IPC. A new transport is a new constant here; the suites parameterised over this enum then run
 * against it unchanged.
 */
enum PeerTransport
{
    /** Forwarded writes as NBD requests on TCP; the sink is a plain NBD export any NBD client can write to. */
    NBD("nbd://127.0.0.1:%d/colo",
        "secondary ready .*forwarding sink nbd://127\\.0\\.0\\.1:(\\d+)/colo, control link 127\\.0\\.0\\.1:(\\d+)",
        true, false),
    /** Aeron over UDP on loopback, each daemon with its embedded media driver. */
    AERON_UDP("aeron:udp?endpoint=127.0.0.1:%d",
        "secondary ready .*forwarding sink aeron:udp\\?endpoint=127\\.0\\.0\\.1:(\\d+)", false, false),
    /** Aeron IPC: both daemons on one external media driver ({@code understudy media-driver}). */
    AERON_IPC("aeron:ipc", "secondary ready .*forwarding sink aeron:ipc", false, true);

    /** The secondary's sink and control link as the primary is told them, read from the ready line. */
    record Peer(String uri, String control, boolean plainNbd, List<String> daemonArgs)
    {
        List<String> args()
        {
            final List<String> args = new ArrayList<>(List.of("--peer", uri));
            if (control != null)
            {
                args.addAll(List.of("--peer-control", control));
            }
            args.addAll(daemonArgs);
            return args;
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
    private final boolean sharedDriver;

    PeerTransport(final String uriFormat, final String readyLine, final boolean plainNbd, final boolean sharedDriver)
    {
        this.uriFormat = uriFormat;
        this.readyLine = readyLine;
        this.plainNbd = plainNbd;
        this.sharedDriver = sharedDriver;
    }

    /** {@code --listen} on free ports, printed in the ready line. */
    String listen()
    {
        return listen(0);
    }

    /** {@code --listen} on {@code port}; over NBD the control link takes the next port. */
    String listen(final int port)
    {
        return uriFormat.formatted(port);
    }

    /** Whether both daemons need the one media driver of {@link #daemonArgs(Path)}'s directory. */
    boolean needsSharedMediaDriver()
    {
        return sharedDriver;
    }

    /** Arguments both daemons take besides the URIs: the shared media driver's directory for Aeron IPC. */
    List<String> daemonArgs(final Path aeronDir)
    {
        return sharedDriver ? List.of("--aeron-dir", aeronDir.toString()) : List.of();
    }

    /** Regex of the secondary's ready line; {@link #peer(Matcher, Path)} reads the match. */
    String readyLine()
    {
        return readyLine;
    }

    /** The primary's view of a secondary whose ready line matched {@link #readyLine()}. */
    Peer peer(final Matcher ready, final Path aeronDir)
    {
        return switch (this)
        {
            case NBD -> new Peer(listen(Integer.parseInt(ready.group(1))), "127.0.0.1:" + ready.group(2), true,
                List.of());
            case AERON_UDP -> new Peer(listen(Integer.parseInt(ready.group(1))), null, false, List.of());
            case AERON_IPC -> new Peer(listen(0), null, false, daemonArgs(aeronDir));
        };
    }

    /** A secondary listening on {@code port} (over NBD the control link on port + 1), before it is ready. */
    Peer peer(final int port, final Path aeronDir)
    {
        return new Peer(listen(port), this == NBD ? "127.0.0.1:" + (port + 1) : null, plainNbd, daemonArgs(aeronDir));
    }

    /** Whether a plain NBD client can play the forwarding primary against this transport's sink. */
    boolean plainNbdSink()
    {
        return plainNbd;
    }
}
