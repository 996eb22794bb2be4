package io.understudy.cli.demo;

import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Raises a library logger's threshold for a while and restores it afterwards. The demo prints its own account
 * of what happens; the components' INFO lines (exports listening, final flushes) would bury it, and the crashed
 * primary's teardown reports, as errors, exactly what a crash means (e.g. its export's final flush failing).
 */
final class QuietLogs implements AutoCloseable
{
    /** Held strongly: JUL keeps loggers weakly, and a collected logger would forget the level. */
    private final Logger logger;
    private final Level previous;

    private QuietLogs(final Logger logger, final Level level)
    {
        this.logger = logger;
        this.previous = logger.getLevel();
        logger.setLevel(level);
    }

    /** Only records at {@code level} or above from {@code name} and its children are logged until closed. */
    static QuietLogs threshold(final String name, final Level level)
    {
        return new QuietLogs(Logger.getLogger(name), level);
    }

    @Override
    public void close()
    {
        logger.setLevel(previous);
    }
}
