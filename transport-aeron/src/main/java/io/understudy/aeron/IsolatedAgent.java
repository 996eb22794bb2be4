package io.understudy.aeron;

import org.agrona.ErrorHandler;
import org.agrona.concurrent.Agent;

/**
 * A link's agent inside the shared Aeron duty cycle: an exception of its duty cycle goes to the link's own error
 * handler (which declares that link lost) instead of ending the cycle for the driver and the other links.
 */
final class IsolatedAgent implements Agent
{
    private final Agent agent;
    private final ErrorHandler errorHandler;

    IsolatedAgent(final Agent agent, final ErrorHandler errorHandler)
    {
        this.agent = agent;
        this.errorHandler = errorHandler;
    }

    @Override
    public void onStart()
    {
        try
        {
            agent.onStart();
        }
        catch (final Throwable error)
        {
            errorHandler.onError(error);
        }
    }

    @Override
    public int doWork()
    {
        try
        {
            return agent.doWork();
        }
        catch (final Throwable error)
        {
            errorHandler.onError(error);
            return 1;
        }
    }

    @Override
    public void onClose()
    {
        try
        {
            agent.onClose();
        }
        catch (final Throwable error)
        {
            errorHandler.onError(error);
        }
    }

    @Override
    public String roleName()
    {
        return agent.roleName();
    }
}
