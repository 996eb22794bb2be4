package io.understudy.cli;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/** Unix socket housekeeping for daemons. */
final class UnixSockets
{
    private UnixSockets()
    {
    }

    /**
     * A daemon killed with SIGKILL leaves its socket file behind, and binding then fails. Removes
     * {@code path} if it is a socket nobody accepts on; leaves live sockets and other files alone.
     *
     * @return true if a stale socket was removed.
     */
    static boolean removeIfStale(final Path path)
    {
        final BasicFileAttributes attributes;
        try
        {
            attributes = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        }
        catch (final IOException e)
        {
            return false; // absent (or unreadable: binding will report it)
        }
        if (!attributes.isOther())
        {
            return false;
        }
        try (SocketChannel probe = SocketChannel.open(StandardProtocolFamily.UNIX))
        {
            probe.connect(UnixDomainSocketAddress.of(path));
            return false; // somebody is serving there: binding will report the conflict
        }
        catch (final IOException refused)
        {
            try
            {
                return Files.deleteIfExists(path);
            }
            catch (final IOException e)
            {
                return false;
            }
        }
    }
}
