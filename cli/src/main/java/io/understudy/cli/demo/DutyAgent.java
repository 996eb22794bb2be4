package io.understudy.cli.demo;

import org.agrona.ErrorHandler;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;

/**
 * A replication disk's duty cycle (forwarding deadlines, COW and overlay retries) as an Agrona agent on its own
 * thread. Idle backs off to 1 ms parks as the daemons' duty cycles do: the deadlines it enforces are seconds,
 * and the two cores are shared with the guest, both NBD servers and the I/O workers.
 */
final class DutyAgent implements Agent
{
    private final String roleName;
    private final IntSupplier work;

    private DutyAgent(final String roleName, final IntSupplier work)
    {
        this.roleName = roleName;
        this.work = work;
    }

    /** Starts {@code work} on a thread named {@code roleName}; errors go to {@code errors}. */
    static AgentRunner start(final String roleName, final IntSupplier work, final ErrorHandler errors)
    {
        final AgentRunner runner = new AgentRunner(new BackoffIdleStrategy(10, 10,
            TimeUnit.MICROSECONDS.toNanos(10), TimeUnit.MILLISECONDS.toNanos(1)), errors, null,
            new DutyAgent(roleName, work));
        AgentRunner.startOnThread(runner);
        return runner;
    }

    @Override
    public int doWork()
    {
        return work.getAsInt();
    }

    @Override
    public String roleName()
    {
        return roleName;
    }
}
