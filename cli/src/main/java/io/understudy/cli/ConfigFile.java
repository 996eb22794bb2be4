package io.understudy.cli;

import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Stack;

/**
 * A sidecar described in a file instead of flags ({@code --config FILE}), read where the option stands: its fields
 * become the flags they name, so a flag after {@code --config} overrides the file and every value is checked
 * exactly as on the command line. Errors name the file, the line and the field.
 * <pre>
 *   # understudy secondary --config colo0.conf
 *   role = secondary              # must match the command
 *   mode = non-shared             # or shared
 *   cluster-size = 64K
 *   control = /run/understudy/colo0.ctl
 *   listen = nbd://10.0.0.2:10809/colo0
 *
 *   [disk colo0]
 *   file = /var/lib/colo/s.img    # the disk (--disk)
 *   format = raw                  # required: the format is never probed
 *   hidden = /var/lib/colo/h.img
 *   active = /var/lib/colo/a.img
 *   socket = /run/understudy/colo0-svm.sock
 * </pre>
 * A field is any long option of the command without its dashes; a boolean option takes {@code true} or
 * {@code false}; a repeatable one may appear on several lines. One {@code [disk NAME]} section: one disk per
 * sidecar in this version (run one sidecar per disk).
 */
final class ConfigFile
{
    private static final String DISK_SECTION = "disk";
    private static final Map<String, String> DISK_FIELDS = Map.of("file", "disk", "hidden", "hidden", "active",
        "active", "socket", "socket", "state", "state");

    /** Where each option read from a file came from ("FILE:LINE: field 'x'"), for error messages. */
    private static final Map<String, String> ORIGINS = new HashMap<>();

    private ConfigFile()
    {
    }

    /** Expands {@code --config FILE} into the flags the file describes, pushed where the option stood. */
    static final class Consumer implements CommandLine.IParameterConsumer
    {
        @Override
        public void consumeParameters(final Stack<String> args, final ArgSpec argSpec, final CommandSpec command)
        {
            if (args.isEmpty())
            {
                throw new CommandLine.ParameterException(command.commandLine(), "--config needs a FILE");
            }
            final Path path = Path.of(args.pop());
            final List<String> flags = read(path, command);
            for (int i = flags.size() - 1; i >= 0; i--)
            {
                args.push(flags.get(i));
            }
        }
    }

    /** Forgets the origins of an earlier command line in this process (tests run many). */
    static synchronized void forget()
    {
        ORIGINS.clear();
    }

    /** @return "FILE:LINE: field 'x'" for an option that came from a config file, else null. */
    static synchronized String originOf(final String option)
    {
        return ORIGINS.get(option);
    }

    static List<String> read(final Path path, final CommandSpec command)
    {
        final List<String> lines;
        try
        {
            lines = Files.readAllLines(path, StandardCharsets.UTF_8);
        }
        catch (final IOException e)
        {
            throw new CommandLine.ParameterException(command.commandLine(), "--config " + path + ": cannot read (" +
                e.getMessage() + ")");
        }
        final List<String> flags = new ArrayList<>();
        String section = null;
        String diskName = null;
        boolean formatGiven = false;
        for (int number = 1; number <= lines.size(); number++)
        {
            final String line = stripComment(lines.get(number - 1)).strip();
            if (line.isEmpty())
            {
                continue;
            }
            final String where = path + ":" + number;
            if (line.startsWith("["))
            {
                if (!line.endsWith("]"))
                {
                    throw error(command, where, "a section is [disk NAME]: " + line);
                }
                final String[] words = line.substring(1, line.length() - 1).strip().split("\\s+");
                if (words.length != 2 || !DISK_SECTION.equals(words[0]))
                {
                    throw error(command, where, "unknown section " + line + " (expected [disk NAME])");
                }
                if (diskName != null)
                {
                    throw error(command, where, "a second disk '" + words[1] + "': one disk per sidecar in this " +
                        "version; run one sidecar per disk");
                }
                section = DISK_SECTION;
                diskName = words[1];
                continue;
            }
            final int equals = line.indexOf('=');
            if (equals <= 0)
            {
                throw error(command, where, "expected FIELD = VALUE: " + line);
            }
            final String field = line.substring(0, equals).strip().toLowerCase(Locale.ROOT);
            final String value = line.substring(equals + 1).strip();
            final String fieldWhere = where + ": field '" + field + "'";
            if (value.isEmpty())
            {
                throw error(command, fieldWhere, "has no value");
            }
            if (section == null)
            {
                switch (field)
                {
                    case "role" ->
                    {
                        if (!value.equals(command.name()))
                        {
                            throw error(command, fieldWhere, "says " + value + ", but the command is " +
                                command.name());
                        }
                    }
                    case "mode" ->
                    {
                        switch (value)
                        {
                            case "shared" -> flags.add(option(command, fieldWhere, "shared"));
                            case "non-shared" ->
                            {
                            }
                            default -> throw error(command, fieldWhere, "must be shared or non-shared, not " + value);
                        }
                    }
                    case "disk", "hidden", "active", "socket", "format" ->
                        throw error(command, fieldWhere, "belongs in the [disk NAME] section");
                    default -> addOption(flags, command, fieldWhere, field, value);
                }
            }
            else if ("format".equals(field))
            {
                if (!"raw".equals(value))
                {
                    throw error(command, fieldWhere, "'" + value + "' is not supported: disks are raw images (a " +
                        "format is never probed)");
                }
                formatGiven = true;
            }
            else if (DISK_FIELDS.containsKey(field))
            {
                addOption(flags, command, fieldWhere, DISK_FIELDS.get(field), value);
            }
            else
            {
                throw error(command, fieldWhere, "unknown in [disk " + diskName + "] (known: file, format, " +
                    "hidden, active, socket, state)");
            }
        }
        if (diskName == null)
        {
            throw error(command, path.toString(), "no [disk NAME] section");
        }
        if (!formatGiven)
        {
            throw error(command, path + ": [disk " + diskName + "]", "needs format = raw (a format is never probed)");
        }
        return flags;
    }

    private static void addOption(
        final List<String> flags, final CommandSpec command, final String where, final String field,
        final String value)
    {
        final String name = option(command, where, field);
        final OptionSpec option = command.findOption(name);
        if (option.arity().max() == 0)
        {
            switch (value)
            {
                case "true" -> flags.add(name);
                case "false" ->
                {
                }
                default -> throw error(command, where, "takes true or false, not " + value);
            }
            return;
        }
        flags.add(name);
        flags.add(value);
    }

    /** @return the long option {@code --field} of the command, remembering where it was given. */
    private static String option(final CommandSpec command, final String where, final String field)
    {
        final String name = "--" + field;
        final OptionSpec option = command.findOption(name);
        if (option == null || "--config".equals(name) || option.usageHelp() || option.versionHelp())
        {
            throw error(command, where, "unknown: `understudy " + command.name() + " --help` lists the fields " +
                "(long options without their dashes)");
        }
        synchronized (ConfigFile.class)
        {
            ORIGINS.put(name, where);
        }
        return name;
    }

    private static String stripComment(final String line)
    {
        final int hash = line.indexOf('#');
        return hash < 0 ? line : line.substring(0, hash);
    }

    private static CommandLine.ParameterException error(
        final CommandSpec command, final String where, final String what)
    {
        return new CommandLine.ParameterException(command.commandLine(), where + ": " + what);
    }
}
