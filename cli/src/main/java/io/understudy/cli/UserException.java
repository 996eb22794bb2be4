package io.understudy.cli;

/** A failure whose message tells the user what is wrong and what to do; printed without a stack trace. */
public final class UserException extends RuntimeException
{
    private static final long serialVersionUID = 1L;

    public UserException(final String message)
    {
        super(message);
    }

    public UserException(final String message, final Throwable cause)
    {
        super(message, cause);
    }
}
