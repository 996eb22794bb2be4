package io.understudy.nbd.control;

import java.io.IOException;

/** The secondary answered HELLO with REFUSE: {@link #code()} is one of {@code ControlProtocol.REFUSE_*}. */
public final class ControlRefusedException extends IOException
{
    private final int code;

    public ControlRefusedException(final int code, final String reason)
    {
        super("the secondary refused the control link (" + ControlProtocol.refuseName(code) + "): " + reason);
        this.code = code;
    }

    public int code()
    {
        return code;
    }
}
