package io.understudy.engine.io;

import io.understudy.engine.device.BlockDevice;

import java.io.IOException;
import java.nio.file.Path;

/**
 * An asynchronous file I/O backend: opens files as {@link BlockDevice}s whose requests it executes.
 * Owns the backend's threads (and rings); closing it closes nothing it opened, so close devices first.
 */
public interface IoEngine extends AutoCloseable
{
    /** @return short name for logs and status, e.g. {@code "io_uring"} or {@code "threads"}. */
    String name();

    /**
     * Opens an existing regular file or block device.
     *
     * @throws IOException with a message naming the file and the reason (missing, not a file, denied, ...).
     */
    BlockDevice open(Path path, FileOptions options) throws IOException;

    /**
     * Says which backend {@link #open} would use for this file and why, for logs and the CLI. Engines
     * with a single backend just name it.
     */
    default String choice(final Path path, final FileOptions options)
    {
        return name();
    }

    @Override
    void close();
}
