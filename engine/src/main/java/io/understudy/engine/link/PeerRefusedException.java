package io.understudy.engine.link;

import java.io.IOException;

/** The secondary answered a primary's hello with a refusal: linking again will not help until the cause is fixed. */
public final class PeerRefusedException extends IOException
{
    private final RefusalCode code;

    public PeerRefusedException(final RefusalCode code, final String reason)
    {
        super("the secondary refused the link (" + code.label() + "): " + reason);
        this.code = code;
    }

    public RefusalCode code()
    {
        return code;
    }
}
