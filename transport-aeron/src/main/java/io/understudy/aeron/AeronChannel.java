package io.understudy.aeron;

import io.aeron.ChannelUri;
import io.aeron.CommonContext;
import org.agrona.SystemUtil;

import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;

/**
 * A link channel from the command line: {@code aeron:udp?endpoint=HOST:PORT} (the secondary's listening address)
 * or {@code aeron:ipc} (both sidecars on one host and one media driver). Further Aeron URI parameters are kept.
 * <p>
 * Publications get a term length of {@value #DEFAULT_TERM_LENGTH} bytes unless the URI sets it (a message may be at
 * most an eighth of a term, which bounds the part size of forwarded writes), and unless the URI sets {@code mtu}:
 * <ul>
 *   <li>{@value #SAME_HOST_MTU} for IPC and loopback endpoints, the largest UDP payload: loopback's link MTU is
 *   64 KiB, so nothing is fragmented, and under load the sender packs up to 15 queued 4 KiB writes into one
 *   datagram, i.e. one system call on each side instead of one per write (over IPC a larger MTU only means
 *   fewer fragments per large write);</li>
 *   <li>{@value #DEFAULT_MTU} otherwise: a 4 KiB write travels in one frame, which a jumbo-frame link carries
 *   whole. Raise it in the URI for a link that carries larger datagrams well.</li>
 * </ul>
 */
public final class AeronChannel
{
    public static final int DEFAULT_MTU = 8192;
    public static final int SAME_HOST_MTU = 65504;
    public static final int DEFAULT_TERM_LENGTH = 16 << 20;

    private final ChannelUri uri;

    private AeronChannel(final ChannelUri uri)
    {
        this.uri = uri;
    }

    /**
     * @throws IllegalArgumentException naming what is wrong: not an Aeron URI, another media, or UDP without an
     *                                  endpoint.
     */
    public static AeronChannel parse(final String text)
    {
        final ChannelUri uri;
        try
        {
            uri = ChannelUri.parse(text);
        }
        catch (final RuntimeException ex)
        {
            throw new IllegalArgumentException("not an Aeron channel URI: " + text + " (" + ex.getMessage() + ")",
                ex);
        }
        if (uri.isUdp())
        {
            final String endpoint = uri.get(CommonContext.ENDPOINT_PARAM_NAME);
            if (endpoint == null || endpoint.lastIndexOf(':') <= 0)
            {
                throw new IllegalArgumentException("an aeron:udp channel needs endpoint=HOST:PORT: " + text);
            }
        }
        else if (!uri.isIpc())
        {
            throw new IllegalArgumentException("expected aeron:udp?endpoint=HOST:PORT or aeron:ipc: " + text);
        }
        return new AeronChannel(uri);
    }

    public boolean isIpc()
    {
        return uri.isIpc();
    }

    /** @return HOST:PORT of a UDP channel, null for IPC. */
    public String endpoint()
    {
        return uri.get(CommonContext.ENDPOINT_PARAM_NAME);
    }

    /** @return the host of a UDP endpoint (brackets of an IPv6 literal removed), null for IPC. */
    public String host()
    {
        return hostOf(endpoint());
    }

    /** @return the host of HOST:PORT (brackets of an IPv6 literal removed), null for a null endpoint. */
    private static String hostOf(final String endpoint)
    {
        if (endpoint == null)
        {
            return null;
        }
        final String host = endpoint.substring(0, endpoint.lastIndexOf(':'));
        return host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
    }

    /**
     * @return this channel, or for a UDP endpoint with port 0 the same channel with a port that was free a moment
     * ago. Aeron would bind each subscription to its own free port, and the data and control streams must share
     * one; a port taken in between makes the subscription fail with "address already in use", never silently.
     * @throws IOException if no UDP port can be bound on the endpoint's host.
     */
    public AeronChannel withFreePort() throws IOException
    {
        final String endpoint = endpoint();
        if (endpoint == null || !endpoint.endsWith(":0"))
        {
            return this;
        }
        final int port;
        try (DatagramSocket probe = new DatagramSocket(new InetSocketAddress(host(), 0)))
        {
            port = probe.getLocalPort();
        }
        final ChannelUri copy = ChannelUri.parse(uri.toString());
        copy.put(CommonContext.ENDPOINT_PARAM_NAME, endpoint.substring(0, endpoint.length() - 1) + port);
        return new AeronChannel(copy);
    }

    /** @return the channel to subscribe to (the secondary's data stream). */
    public String subscriptionChannel()
    {
        return uri.toString();
    }

    /** @return the channel to publish on, with MTU and term length defaulted. */
    public String publicationChannel()
    {
        return withDefaults(uri.toString());
    }

    /** @return the channel to publish on with a session id of our own, so the receiver tells publishers apart. */
    public String publicationChannel(final int sessionId)
    {
        final ChannelUri copy = ChannelUri.parse(publicationChannel());
        copy.put(CommonContext.SESSION_ID_PARAM_NAME, Integer.toString(sessionId));
        return copy.toString();
    }

    /** @return {@code channel} with this module's MTU and term length unless it sets them. */
    static String withDefaults(final String channel)
    {
        final ChannelUri copy = ChannelUri.parse(channel);
        if (copy.get(CommonContext.TERM_LENGTH_PARAM_NAME) == null)
        {
            copy.put(CommonContext.TERM_LENGTH_PARAM_NAME, Integer.toString(DEFAULT_TERM_LENGTH));
        }
        if (copy.get(CommonContext.MTU_LENGTH_PARAM_NAME) == null)
        {
            final boolean sameHost = copy.isIpc() || isLoopback(hostOf(copy.get(CommonContext.ENDPOINT_PARAM_NAME)));
            // Aeron refuses an MTU above the largest message of the term (an eighth of it).
            final long termLength = SystemUtil.parseSize(CommonContext.TERM_LENGTH_PARAM_NAME,
                copy.get(CommonContext.TERM_LENGTH_PARAM_NAME));
            final long mtu = Math.min(sameHost ? SAME_HOST_MTU : DEFAULT_MTU, termLength / 8);
            copy.put(CommonContext.MTU_LENGTH_PARAM_NAME, Long.toString(mtu));
        }
        return copy.toString();
    }

    /** @return true if {@code host} (a literal or a name) is a loopback address; false if it does not resolve. */
    private static boolean isLoopback(final String host)
    {
        try
        {
            return InetAddress.getByName(host).isLoopbackAddress();
        }
        catch (final UnknownHostException ex)
        {
            return false; // Aeron reports the unresolvable endpoint itself when the channel is added.
        }
    }

    @Override
    public String toString()
    {
        return uri.toString();
    }
}
