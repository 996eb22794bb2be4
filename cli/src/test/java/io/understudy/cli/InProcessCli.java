package io.understudy.cli;

import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

/**
 * Runs {@code understudy} commands in this JVM, as the option-validation tests need them: a fresh command line
 * per run, with everything it prints kept in {@link #out} and {@link #err} (accumulated over the runs).
 */
public final class InProcessCli
{
    public final StringWriter out = new StringWriter();
    public final StringWriter err = new StringWriter();

    /** @return the exit code: 0, 1 for a run-time failure, 2 for bad arguments. */
    public int run(final String... args)
    {
        final CommandLine commandLine = Understudy.commandLine();
        commandLine.setOut(new PrintWriter(out, true));
        commandLine.setErr(new PrintWriter(err, true));
        return commandLine.execute(args);
    }
}
