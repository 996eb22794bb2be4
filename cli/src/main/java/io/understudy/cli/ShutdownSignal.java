package io.understudy.cli;

import sun.misc.Signal;

import java.util.concurrent.CountDownLatch;

/**
 * Turns SIGINT and SIGTERM into an orderly shutdown on the main thread. A JVM shutdown hook would also
 * run, but the process would then exit with 128+signal even after a clean drain; operators and
 * orchestrators expect exit 0 from a daemon that stopped cleanly when asked to.
 */
final class ShutdownSignal
{
    private final CountDownLatch signalled = new CountDownLatch(1);
    private volatile String name;

    ShutdownSignal()
    {
        for (final String signal : new String[]{"INT", "TERM"})
        {
            Signal.handle(new Signal(signal), received ->
            {
                name = "SIG" + received.getName();
                signalled.countDown();
            });
        }
    }

    /** Blocks until a signal arrives; returns its name. */
    String await() throws InterruptedException
    {
        signalled.await();
        return name;
    }
}
