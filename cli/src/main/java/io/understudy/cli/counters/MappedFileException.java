package io.understudy.cli.counters;

import java.nio.file.Path;

/**
 * A counters file or error log that a reader refuses, with the reason named so that {@code understudy stat} and
 * {@code understudy errors} can tell an operator what to do (start the daemon, point at the right file, use the
 * matching understudy version) rather than print garbage read from somebody else's file.
 */
public final class MappedFileException extends RuntimeException
{
    /** Why the file was refused. */
    public enum Reason
    {
        /** No file at the path. */
        MISSING,
        /** Shorter than its header, or than the lengths its header names. */
        TRUNCATED,
        /** The magic does not match: another program's file, or a daemon that has not finished creating it. */
        NOT_OURS,
        /** Written by an understudy with another layout version. */
        WRONG_VERSION,
        /** A live daemon other than the caller owns the file. */
        IN_USE,
        /** The file exists but cannot be read or mapped. */
        UNREADABLE;

        /** @return the reason as printed, e.g. {@code wrong-version}. */
        public String label()
        {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    private final Reason reason;
    private final Path path;

    public MappedFileException(final Reason reason, final Path path, final String message)
    {
        super(path + ": " + message);
        this.reason = reason;
        this.path = path;
    }

    public Reason reason()
    {
        return reason;
    }

    public Path path()
    {
        return path;
    }
}
