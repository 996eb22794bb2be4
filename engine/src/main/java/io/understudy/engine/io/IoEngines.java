package io.understudy.engine.io;

import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.io.uring.UringIoEngine;

import java.io.IOException;
import java.util.Locale;

/**
 * Creates the {@link IoEngine} for an {@link IoMode}.
 * <ul>
 *   <li>{@link IoMode#THREADS}: {@link ThreadPoolIoEngine} with its default workers.</li>
 *   <li>{@link IoMode#URING}: {@link UringIoEngine}; fails with the kernel's reason when io_uring cannot
 *   be set up (kernel.io_uring_disabled, a container's seccomp filter: EPERM or ENOSYS).</li>
 *   <li>{@link IoMode#AUTO}: probes io_uring once (ring setup plus a NOP round trip), then chooses per
 *   file, see {@link AutoIoEngine}.</li>
 * </ul>
 * Setting the system property {@value #DISABLE_PROPERTY} to {@code true}, or the environment variable
 * {@value #DISABLE_ENV} to {@code 1}/{@code true}, makes the probe fail as if the kernel refused io_uring:
 * to check the fallback path, or to rule io_uring out on a suspicious host.
 */
public final class IoEngines
{
    public static final String DISABLE_PROPERTY = "understudy.io_uring.disable";
    public static final String DISABLE_ENV = "UNDERSTUDY_IO_URING_DISABLE";

    private IoEngines()
    {
    }

    /**
     * Creates an engine whose thread backend has {@link ThreadPoolIoEngine#DEFAULT_WORKERS} workers.
     *
     * @throws IOException if {@code mode} is {@link IoMode#URING} and io_uring is unavailable.
     */
    public static IoEngine create(final IoMode mode) throws IOException
    {
        return create(mode, ThreadPoolIoEngine.DEFAULT_WORKERS);
    }

    /**
     * @param threadWorkers workers of the thread backend; 0 runs its requests inline on the submitting thread,
     *                      which is fastest for page-cache files when every submitter is an I/O thread of its own
     *                      (an NBD connection's receiver, for example).
     * @throws IOException if {@code mode} is {@link IoMode#URING} and io_uring is unavailable.
     */
    public static IoEngine create(final IoMode mode, final int threadWorkers) throws IOException
    {
        return create(mode, threadWorkers, IoOffload.ALL);
    }

    /**
     * @param threadWorkers workers of the thread backend; 0 runs every request inline.
     * @param offload       which requests of the thread backend go to its workers, see {@link IoOffload}.
     * @throws IOException if {@code mode} is {@link IoMode#URING} and io_uring is unavailable.
     */
    public static IoEngine create(final IoMode mode, final int threadWorkers, final IoOffload offload)
        throws IOException
    {
        return switch (mode)
        {
            case THREADS -> new ThreadPoolIoEngine(threadWorkers, offload);
            case URING ->
            {
                final String refusal = probe();
                if (refusal != null)
                {
                    throw new IOException("io_uring is not available: " + refusal + "; use --io threads or auto");
                }
                yield new UringIoEngine();
            }
            case AUTO -> new AutoIoEngine(probe(), threadWorkers, offload);
        };
    }

    /** @return null if io_uring works here, else why not. */
    static String probe()
    {
        if (isForcedOff())
        {
            return "disabled by " + DISABLE_PROPERTY + "/" + DISABLE_ENV;
        }
        try
        {
            UringIoEngine.probe();
            return null;
        }
        catch (final IOException | RuntimeException | LinkageError e)
        {
            return e.getMessage();
        }
    }

    private static boolean isForcedOff()
    {
        final String property = System.getProperty(DISABLE_PROPERTY);
        final String env = System.getenv(DISABLE_ENV);
        return isTrue(property) || isTrue(env);
    }

    private static boolean isTrue(final String value)
    {
        if (value == null)
        {
            return false;
        }
        final String v = value.trim().toLowerCase(Locale.ROOT);
        return v.equals("1") || v.equals("true") || v.equals("yes");
    }
}
