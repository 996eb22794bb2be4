package io.understudy.cli;

import io.understudy.aeron.AeronMedia;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code understudy media-driver}: a standalone Aeron media driver that daemons on this host share through
 * {@code --aeron-dir}. Two daemons need one for {@code aeron:ipc}; over UDP it moves the driver's work out of
 * the daemons, Aeron's usual production layout.
 */
@Command(
    name = "media-driver",
    mixinStandardHelpOptions = true,
    description = {
        "Run an Aeron media driver in --aeron-dir (use /dev/shm: its buffers are memory-mapped files) for",
        "primary and secondary daemons started with the same --aeron-dir. Runs until SIGINT or SIGTERM, then",
        "removes the directory."})
final class MediaDriverCommand implements Callable<Integer>
{
    @Option(names = "--aeron-dir", required = true, paramLabel = "DIR", description = "The driver's directory.")
    Path aeronDir;

    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception
    {
        final PrintWriter out = spec.commandLine().getOut();
        final ShutdownSignal shutdown = new ShutdownSignal();
        try (AeronMedia _ = AeronMedia.standalone(aeronDir.toString()))
        {
            out.printf("understudy: media driver ready in %s%n", aeronDir);
            out.flush();
            final String signal = shutdown.await();
            out.printf("understudy: %s received: stopping the media driver%n", signal);
        }
        catch (final IllegalStateException e)
        {
            throw new UserException("--aeron-dir " + aeronDir + ": " + e.getMessage(), e);
        }
        out.println("understudy: stopped cleanly");
        return 0;
    }
}
