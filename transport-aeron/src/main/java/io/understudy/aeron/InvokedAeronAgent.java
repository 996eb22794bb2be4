package io.understudy.aeron;

import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentInvoker;

import java.util.concurrent.locks.Lock;

/**
 * Runs an embedded media driver's agents (INVOKER threading mode) and the Aeron client's conductor (which Aeron then
 * requires in invoker mode too) inside the sidecar's Aeron duty cycle, so that the driver, the client and the link
 * agents share one thread instead of handing every message from one to the next.
 * <p>
 * The driver's agents are single-threaded, but two threads drive them: the duty thread, through this agent, and any
 * thread that registers a publication or subscription, through the client's {@code awaitResponse}, which invokes the
 * driver while it holds the client lock. Invoking only under the same lock keeps one thread at a time inside the
 * driver, and the lock's release and acquire order the driver's plain fields between them. {@code tryLock}: the duty
 * cycle never waits for a registration; it invokes the driver on its next turn.
 */
final class InvokedAeronAgent implements Agent
{
    private final AgentInvoker driver;
    private final AgentInvoker conductor;
    private final Lock clientLock;

    InvokedAeronAgent(final AgentInvoker driver, final AgentInvoker conductor, final Lock clientLock)
    {
        this.driver = driver;
        this.conductor = conductor;
        this.clientLock = clientLock;
    }

    @Override
    public int doWork()
    {
        if (!clientLock.tryLock())
        {
            return 0;
        }
        try
        {
            return driver.invoke() + conductor.invoke();
        }
        finally
        {
            clientLock.unlock();
        }
    }

    @Override
    public String roleName()
    {
        return "aeron-embedded";
    }
}
