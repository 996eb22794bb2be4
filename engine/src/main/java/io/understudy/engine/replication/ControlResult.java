package io.understudy.engine.replication;

import io.understudy.engine.device.Errno;

/**
 * Outcome of a control operation (start, stop, failover, get-error): 0 or a negated {@link Errno}, and a
 * one-line reason an operator can act on. Control operations are rare, so a result object per call is fine.
 *
 * @param result 0 on success, else a negated errno.
 * @param reason empty on success, else what went wrong.
 */
public record ControlResult(int result, String reason)
{
    /** Success. */
    public static final ControlResult OK = new ControlResult(0, "");
    /** Accepted without effect (e.g. start, checkpoint or stop after a failover, spec 2.2 and R6). */
    public static final ControlResult IGNORED = new ControlResult(0, "ignored");

    public static ControlResult error(final int errno, final String reason)
    {
        return new ControlResult(-Math.abs(errno), reason);
    }

    public boolean ok()
    {
        return result >= 0;
    }

    @Override
    public String toString()
    {
        return ok() ? (reason.isEmpty() ? "ok" : reason) : Errno.name(result) + ": " + reason;
    }
}
