package io.understudy.cli.counters;

/** Which daemon wrote a counters file or error log, as the code stored in their header. */
public enum DaemonRole
{
    UNKNOWN(0, "unknown"), SERVE(1, "serve"), PRIMARY(2, "primary"), SECONDARY(3, "secondary");

    private final int code;
    private final String label;

    DaemonRole(final int code, final String label)
    {
        this.code = code;
        this.label = label;
    }

    public int code()
    {
        return code;
    }

    public String label()
    {
        return label;
    }

    /** @return the role stored as {@code code}, UNKNOWN for a code this version does not know. */
    public static DaemonRole of(final int code)
    {
        for (final DaemonRole role : values())
        {
            if (role.code == code)
            {
                return role;
            }
        }
        return UNKNOWN;
    }
}
