package io.understudy.cli;

import io.understudy.cli.demo.DemoCommand;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code understudy} command: a block-replication sidecar for hypervisors. Each subcommand is one
 * class; this one only wires them together and maps failures to exit codes.
 */
@Command(
    name = "understudy",
    mixinStandardHelpOptions = true,
    versionProvider = VersionProvider.class,
    description = "Block-replication sidecar for COLO fault-tolerant VMs, attached to the hypervisor over NBD.",
    subcommands = {ServeCommand.class, PrimaryCommand.class, SecondaryCommand.class, MediaDriverCommand.class,
        CheckpointCommand.class, FailoverCommand.class, StopCommand.class, StatusCommand.class, StatCommand.class,
        ErrorsCommand.class, EventsCommand.class, DemoCommand.class, AutoComplete.GenerateCompletion.class,
        CommandLine.HelpCommand.class})
public final class Understudy
{
    /** Exit code for a failure at run time (bad file, I/O error); picocli uses 2 for bad arguments. */
    public static final int EXIT_FAILURE = 1;

    /** One line per record, with a timestamp: daemons' logs end up in journals and files, read by grep. */
    private static final String LOG_FORMAT = "%1$tF %1$tT.%1$tL %4$s %3$s: %5$s%6$s%n";

    public static void main(final String[] args)
    {
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null)
        {
            System.setProperty("java.util.logging.SimpleFormatter.format", LOG_FORMAT);
        }
        System.exit(commandLine().execute(args));
    }

    /** @return the first {@code --option} a message names, or null. */
    private static String firstOption(final String message)
    {
        final int start = message == null ? -1 : message.indexOf("--");
        if (start < 0)
        {
            return null;
        }
        int end = start + 2;
        while (end < message.length() && (Character.isLetterOrDigit(message.charAt(end)) || message.charAt(end) == '-'))
        {
            end++;
        }
        return message.substring(start, end);
    }

    /** @return the configured command line, also used by tests to run commands in-process. */
    public static CommandLine commandLine()
    {
        ConfigFile.forget();
        final CommandLine commandLine = new CommandLine(new Understudy());
        commandLine.setCaseInsensitiveEnumValuesAllowed(true);
        // The last of a repeated option wins, so flags after --config FILE override the file's fields.
        commandLine.setOverwrittenOptionsAllowed(true);
        commandLine.setExecutionExceptionHandler((exception, cmd, parseResult) ->
        {
            // Expected failures carry a message meant for the user: print it alone, no stack trace.
            if (exception instanceof UserException)
            {
                final String origin = ConfigFile.originOf(firstOption(exception.getMessage()));
                cmd.getErr().println("understudy: " + (origin != null ? origin + ": " : "") + exception.getMessage());
                return EXIT_FAILURE;
            }
            throw exception;
        });
        final CommandLine.IParameterExceptionHandler usage = commandLine.getParameterExceptionHandler();
        commandLine.setParameterExceptionHandler((exception, args) ->
        {
            // A bad value that came from a --config file: say which line and field before the usual usage text.
            final String origin = exception.getArgSpec() instanceof CommandLine.Model.OptionSpec option ?
                ConfigFile.originOf(option.longestName()) : null;
            if (origin != null)
            {
                exception.getCommandLine().getErr().println("understudy: " + origin + ":");
            }
            return usage.handleParseException(exception, args);
        });
        return commandLine;
    }
}
