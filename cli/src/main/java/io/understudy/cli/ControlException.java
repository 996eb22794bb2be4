package io.understudy.cli;

/**
 * A control command that failed, as the daemon's control socket reports it:
 * {@code {"error": {"class": errorClass, "desc": message}}}.
 */
final class ControlException extends Exception
{
    static final String GENERIC = "GenericError";
    static final String COMMAND_NOT_FOUND = "CommandNotFound";
    static final String INVALID_PARAMETER = "InvalidParameter";
    static final String COORDINATED_BY_PRIMARY = "CoordinatedByPrimary";

    private final String errorClass;

    ControlException(final String errorClass, final String message)
    {
        super(message, null, false, false);
        this.errorClass = errorClass;
    }

    String errorClass()
    {
        return errorClass;
    }
}
