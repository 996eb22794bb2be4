package io.understudy.cli;

/**
 * A failure the daemon observed as a state rather than caught as an exception (an error the replication core
 * latched, a control link that lost its peer), so that it goes to the same error handler, counter and error log
 * as thrown ones. Stackless: the sampler that noticed it is no part of its story, and the error log
 * deduplicates it by its message alone.
 */
final class ObservedFailure extends RuntimeException
{
    ObservedFailure(final String message)
    {
        super(message, null, false, false);
    }
}
