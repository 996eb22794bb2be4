package io.understudy.cli.demo;

import java.util.ArrayDeque;

/**
 * Resources of one side of the demo (a primary or a secondary "host"), closed in the reverse order of their
 * creation; the primary's side is closed at its crash, the secondary's at the end.
 */
final class Teardown
{
    private final ArrayDeque<AutoCloseable> resources = new ArrayDeque<>();

    <T extends AutoCloseable> T push(final T resource)
    {
        resources.push(resource);
        return resource;
    }

    /**
     * Closes everything pushed so far, newest first, each once, even if one fails.
     *
     * @return the first failure (later ones suppressed in it), or null.
     */
    Exception closeAll()
    {
        Exception first = null;
        while (!resources.isEmpty())
        {
            try
            {
                resources.pop().close();
            }
            catch (final Exception e)
            {
                if (first == null)
                {
                    first = e;
                }
                else
                {
                    first.addSuppressed(e);
                }
            }
        }
        return first;
    }
}
