package io.understudy.engine.device;

/**
 * Callback for a completed {@link BlockDevice} request. Implementations are long-lived objects (one per
 * connection or component) that use the {@code cookie} to find their request state; they must not block.
 */
@FunctionalInterface
public interface IoCompletion
{
    /**
     * @param cookie the value given at submission.
     * @param result {@code >= 0} on success (bytes transferred for read/write), else a negated {@link Errno}.
     */
    void onComplete(long cookie, int result);
}
