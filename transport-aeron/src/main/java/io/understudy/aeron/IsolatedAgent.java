package io.understudy.aeron;

import org.agrona.ErrorHandler;
import org.agrona.concurrent.Agent;

/**
 * A link's agent inside the shared Aeron duty cycle: an exception of its duty cycle goes to the link's own error
 * handler (which declares that link lost) instead of ending the cycle for the driver and the other links. Work it
 * does is reported to {@code onWork} (the duty thread's idle strategy: messages are flowing).
 */
final class IsolatedAgent implements Agent
{
    private final Agent agent;
    private final ErrorHandler errorHandler;
    private final Runnable onWork;

    IsolatedAgent(final Agent agent, final ErrorHandler errorHandler, final Runnable onWork)
    {
        this.agent = agent;
        this.errorHandler = errorHandler;
        this.onWork = onWork;
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
            final int work = agent.doWork();
            if (work > 0)
            {
                onWork.run();
            }
            return work;
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
