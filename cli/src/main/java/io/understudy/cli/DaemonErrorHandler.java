package io.understudy.cli;

import org.agrona.ErrorHandler;
import org.agrona.concurrent.errors.DistinctErrorLog;
import org.agrona.concurrent.status.AtomicCounter;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The one place a daemon's errors go (NBD connection failures, latched replication errors, lost control links,
 * exceptions escaping a duty cycle or a thread): each is counted, kept in the deduplicated error log that
 * {@code understudy errors} reads (type, message, stack, count, first and last time), and logged once per
 * distinct type and message, without the stack (the log file has it).
 * <p>
 * Thread-safe: called from I/O, control and duty-cycle threads at once. Errors are rare, so the work here
 * (a lookup, Agrona's record) is not on any request's path.
 */
final class DaemonErrorHandler implements ErrorHandler
{
    private static final System.Logger LOG = System.getLogger("io.understudy.cli.errors");

    private final DistinctErrorLog log;
    private final AtomicCounter count;
    private final Set<String> logged = ConcurrentHashMap.newKeySet();
    private volatile boolean logFullReported;

    DaemonErrorHandler(final DistinctErrorLog log, final AtomicCounter count)
    {
        this.log = log;
        this.count = count;
    }

    @Override
    public void onError(final Throwable throwable)
    {
        // Atomic add on the mapped counter: readers only need the value.
        count.increment();
        final String summary = throwable instanceof ObservedFailure ? throwable.getMessage() :
            throwable.getClass().getName() + ": " + throwable.getMessage();
        if (logged.add(summary))
        {
            LOG.log(System.Logger.Level.ERROR, summary + " (counted in understudy stat; details: understudy errors)");
        }
        if (!log.record(throwable) && !logFullReported)
        {
            logFullReported = true;
            LOG.log(System.Logger.Level.WARNING, "the error log is full: further distinct errors are counted, " +
                "not kept");
        }
    }
}
