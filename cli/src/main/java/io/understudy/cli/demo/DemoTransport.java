package io.understudy.cli.demo;

import java.util.Locale;

/** How the demo's primary reaches its secondary inside the one process (see {@link DemoLink#open}). */
enum DemoTransport
{
    /** NBD over loopback TCP: the secondary's sink served by an NBD server, the primary's NBD client on it. */
    NBD,
    /** Aeron IPC through an embedded media driver (the default: the "embedded Aeron media driver"). */
    AERON;

    /** @return the name users type, e.g. {@code nbd}. */
    String label()
    {
        return name().toLowerCase(Locale.ROOT);
    }
}
