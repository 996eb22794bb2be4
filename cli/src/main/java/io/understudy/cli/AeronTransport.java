package io.understudy.cli;

import io.understudy.aeron.AeronMedia;

import java.nio.file.Files;
import java.nio.file.Path;

/** The daemons' choice of Aeron media driver: embedded by default, the external one of {@code --aeron-dir}. */
final class AeronTransport
{
    private AeronTransport()
    {
    }

    static AeronMedia media(final Path aeronDir)
    {
        if (aeronDir == null)
        {
            return AeronMedia.embedded();
        }
        if (!Files.isDirectory(aeronDir))
        {
            throw new UserException("--aeron-dir " + aeronDir + ": no media driver there (start one with " +
                "`understudy media-driver --aeron-dir " + aeronDir + "`)");
        }
        try
        {
            return AeronMedia.external(aeronDir.toString());
        }
        catch (final RuntimeException e)
        {
            throw new UserException("--aeron-dir " + aeronDir + ": cannot reach the media driver (" + e.getMessage() +
                ")", e);
        }
    }
}
