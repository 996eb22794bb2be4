package io.understudy.cli.demo;

import io.understudy.engine.io.IoMode;

import java.nio.file.Path;

/**
 * The validated options of one demo run, shared by both modes.
 *
 * @param size                    disk size in bytes (a multiple of 1 MiB, at least 8 MiB).
 * @param durationNanos           how long the guest writes in each mode before the primary crashes.
 * @param checkpointIntervalNanos time from one checkpoint's start to the next.
 * @param transport               the link between primary and secondary.
 * @param io                      the I/O backend of both "hosts".
 * @param dir                     where each mode's temporary directory is created.
 * @param keep                    keep the temporary files (their path is printed).
 * @param seed                    of the write offsets and the data.
 */
record DemoSettings(
    long size, long durationNanos, long checkpointIntervalNanos, DemoTransport transport, IoMode io, Path dir,
    boolean keep, long seed)
{
}
