package io.understudy.aeron;

import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.IoUtil;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * The Aeron media a link runs on: either an embedded media driver owned by this object (SHARED threading mode with
 * backoff idle strategies, because a 2-core host halves its throughput when driver threads busy-spin; its directory
 * under /dev/shm, or the temp dir, deleted on start and on close), or an external driver reached through its
 * directory ({@code --aeron-dir}). Either way it owns one Aeron client, which every publication and subscription of
 * the links share.
 * <p>
 * Closing closes the client, then the embedded driver, which removes its directory; a JVM that exits without
 * closing removes it in a shutdown hook.
 */
public final class AeronMedia implements AutoCloseable
{
    private static final System.Logger LOG = System.getLogger("io.understudy.aeron");
    /**
     * Longest park of an idle agent. Each daemon runs several agents (the driver's, the link's, the client's); at
     * 100 us their wake-ups took half of a 2-core machine: 4 KiB reads served by the primary, which never touch
     * Aeron, fell from 38k to 19k IOPS next to an idle link; at 1 ms they came back to 31k.
     */
    private static final long BACKOFF_MAX_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(1);

    private final MediaDriver driver;
    private final Aeron aeron;
    private final String directory;
    /** Removes an embedded driver's directory if the process exits without closing this object. */
    private final Thread exitCleanup;
    private boolean closed;

    private AeronMedia(final MediaDriver driver, final Aeron aeron, final String directory)
    {
        this.driver = driver;
        this.aeron = aeron;
        this.directory = directory;
        if (driver != null)
        {
            exitCleanup = new Thread(() -> IoUtil.delete(new File(directory), true), "aeron-dir-cleanup");
            Runtime.getRuntime().addShutdownHook(exitCleanup);
        }
        else
        {
            exitCleanup = null;
        }
    }

    /** Starts an embedded driver with the defaults described above. */
    public static AeronMedia embedded()
    {
        return embedded(context -> { });
    }

    /**
     * Starts an embedded driver; {@code customiser} may change its context before launch (tests install loss
     * generators, shorten timeouts or shrink term buffers with it).
     */
    public static AeronMedia embedded(final Consumer<MediaDriver.Context> customiser)
    {
        return launch(defaultDirectory(), true, customiser);
    }

    /**
     * Starts a driver in {@code directory} for other processes to share (their {@code --aeron-dir}); Aeron refuses
     * a directory whose driver is still alive. Closing stops the driver and removes the directory.
     */
    public static AeronMedia standalone(final String directory)
    {
        return launch(directory, false, context -> { });
    }

    private static AeronMedia launch(
        final String directory, final boolean deleteOnStart, final Consumer<MediaDriver.Context> customiser)
    {
        final MediaDriver.Context context = new MediaDriver.Context()
            .aeronDirectoryName(directory)
            .dirDeleteOnStart(deleteOnStart)
            .dirDeleteOnShutdown(true)
            .threadingMode(ThreadingMode.SHARED)
            .sharedIdleStrategy(backoff())
            .termBufferSparseFile(true)
            .warnIfDirectoryExists(false);
        customiser.accept(context);
        final MediaDriver driver = MediaDriver.launchEmbedded(context);
        try
        {
            final Aeron aeron = Aeron.connect(new Aeron.Context()
                .aeronDirectoryName(driver.aeronDirectoryName())
                .errorHandler(AeronMedia::onClientError));
            return new AeronMedia(driver, aeron, driver.aeronDirectoryName());
        }
        catch (final RuntimeException ex)
        {
            driver.close();
            throw ex;
        }
    }

    /** Connects to the external driver whose directory is {@code aeronDirectory}; the driver is not ours to stop. */
    public static AeronMedia external(final String aeronDirectory)
    {
        final Aeron aeron = Aeron.connect(new Aeron.Context()
            .aeronDirectoryName(aeronDirectory)
            .errorHandler(AeronMedia::onClientError));
        return new AeronMedia(null, aeron, aeronDirectory);
    }

    /** @return the idle strategy of the link agents and the embedded driver: spin briefly, yield, then park. */
    static BackoffIdleStrategy backoff()
    {
        return new BackoffIdleStrategy(10, 20, 1_000, BACKOFF_MAX_PARK_NANOS);
    }

    public Aeron aeron()
    {
        return aeron;
    }

    /** @return the driver's directory. */
    public String directory()
    {
        return directory;
    }

    /** @return true if this object runs the driver (and removes its directory on close). */
    public boolean isEmbedded()
    {
        return driver != null;
    }

    /** Idempotent. */
    @Override
    public synchronized void close()
    {
        if (closed)
        {
            return;
        }
        closed = true;
        aeron.close();
        if (driver != null)
        {
            driver.close();
            // dirDeleteOnShutdown removes the driver's files; make sure the directory itself is gone too.
            IoUtil.delete(new File(directory), true);
            try
            {
                Runtime.getRuntime().removeShutdownHook(exitCleanup);
            }
            catch (final IllegalStateException ex)
            {
                // The JVM is exiting: the hook runs anyway and finds nothing left to delete.
            }
        }
    }

    private static String defaultDirectory()
    {
        final Path shm = Path.of("/dev/shm");
        final Path parent = Files.isDirectory(shm) && Files.isWritable(shm) ? shm :
            Path.of(System.getProperty("java.io.tmpdir"));
        final String name = "understudy-aeron-" + ProcessHandle.current().pid() + "-" +
            Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE);
        return parent.resolve(name).toString();
    }

    private static void onClientError(final Throwable error)
    {
        LOG.log(System.Logger.Level.WARNING, "Aeron client: {0}", String.valueOf(error));
    }
}
