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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.Stack;
import java.util.TreeMap;

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
 * {@code false}; a repeatable one may appear on several lines.
 * <p>
 * <b>Several disks.</b> A sidecar serves one disk per {@code [disk NAME]} section. With one section the file is
 * exactly the flags above. With several, the top-level fields are sidecar-wide and each section carries its
 * disk's own fields, its link included ({@code peer}, {@code peer-control} on the primary; {@code listen},
 * {@code control-listen} on the secondary); the sections are kept here, in file order, for the command to build
 * one disk runtime each. The first section still becomes flags, so the command's required options are met and
 * every value of that disk is checked by picocli; the command refuses per-disk flags that would override it.
 * No two sections may share a name, a file, a socket or a link address.
 */
final class ConfigFile
{
    /** A field of a section: its value and where it was given ("FILE:LINE: field 'x'"). */
    record Value(String text, String where)
    {
    }

    /**
     * One {@code [disk NAME]} section.
     *
     * @param fields the section's values by long option name ({@code --disk}, {@code --socket}, ...), in file
     *               order (a repeatable option such as {@code --inject-fault} may have several).
     */
    record DiskSection(String name, String where, Map<String, List<Value>> fields)
    {
        /** @return the value of {@code option}, or null if the section does not give it. */
        Value get(final String option)
        {
            final List<Value> values = fields.get(option);
            return values == null ? null : values.getLast();
        }

        /** @return every value of a repeatable {@code option}, in file order. */
        List<Value> all(final String option)
        {
            return fields.getOrDefault(option, List.of());
        }
    }

    private static final String DISK_SECTION = "disk";

    /** Section fields and the option each names; {@code file} is {@code --disk}. */
    private static final Map<String, String> DISK_FIELDS = Map.ofEntries(Map.entry("file", "disk"),
        Map.entry("hidden", "hidden"), Map.entry("active", "active"), Map.entry("socket", "socket"),
        Map.entry("state", "state"), Map.entry("peer", "peer"), Map.entry("peer-control", "peer-control"),
        Map.entry("listen", "listen"), Map.entry("control-listen", "control-listen"),
        Map.entry("inject-fault", "inject-fault"));

    /** Fields that are a disk's own link: top-level only in a sidecar of one disk. */
    private static final Set<String> LINK_FIELDS = Set.of("peer", "peer-control", "listen", "control-listen");

    /** Section fields that name a file no other disk may use. */
    private static final Set<String> FILE_FIELDS = Set.of("disk", "hidden", "active", "state");

    /** Where each option read from a file came from ("FILE:LINE: field 'x'"), for error messages. */
    private static final Map<String, String> ORIGINS = new HashMap<>();

    private final Path path;
    private final List<DiskSection> disks;

    private ConfigFile(final Path path, final List<DiskSection> disks)
    {
        this.path = path;
        this.disks = List.copyOf(disks);
    }

    Path path()
    {
        return path;
    }

    /** @return the {@code [disk NAME]} sections in file order (at least one). */
    List<DiskSection> disks()
    {
        return disks;
    }

    /** @return true if the file describes a sidecar of several disks. */
    boolean isMultiDisk()
    {
        return disks.size() > 1;
    }

    /**
     * Expands {@code --config FILE} into the flags the file describes, pushed where the option stood, and keeps the
     * parsed file as the option's value.
     */
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
            final List<String> flags = new ArrayList<>();
            argSpec.setValue(read(path, command, flags));
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

    /** @return the flags {@code path} describes (see the class comment). */
    static List<String> read(final Path path, final CommandSpec command)
    {
        final List<String> flags = new ArrayList<>();
        read(path, command, flags);
        return flags;
    }

    private static ConfigFile read(final Path path, final CommandSpec command, final List<String> flags)
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
        final List<DiskSection> sections = new ArrayList<>();
        final Map<String, String> topLevelLinks = new LinkedHashMap<>();
        final List<String> firstDiskFlags = new ArrayList<>();
        DiskSection section = null;
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
                if (section != null && !formatGiven)
                {
                    throw error(command, path + ": [disk " + section.name() + "]", "needs format = raw (a format " +
                        "is never probed)");
                }
                for (final DiskSection earlier : sections)
                {
                    if (earlier.name().equals(words[1]))
                    {
                        throw error(command, where, "a second disk named '" + words[1] + "' (the first is at " +
                            earlier.where() + "): disk names must be unique");
                    }
                }
                section = new DiskSection(words[1], where, new LinkedHashMap<>());
                sections.add(section);
                formatGiven = false;
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
                    default ->
                    {
                        if (LINK_FIELDS.contains(field) || "state".equals(field))
                        {
                            topLevelLinks.putIfAbsent(field, fieldWhere);
                        }
                        addOption(flags, command, fieldWhere, field, value);
                    }
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
            else if (DISK_FIELDS.containsKey(field) && command.findOption("--" + DISK_FIELDS.get(field)) != null)
            {
                final String name = DISK_FIELDS.get(field);
                section.fields().computeIfAbsent("--" + name, _ -> new ArrayList<>()).add(new Value(value,
                    fieldWhere));
                if (sections.size() == 1)
                {
                    addOption(firstDiskFlags, command, fieldWhere, name, value);
                }
            }
            else
            {
                throw error(command, fieldWhere, "unknown in [disk " + section.name() + "] (known: " +
                    knownDiskFields(command) + ")");
            }
        }
        if (section == null)
        {
            throw error(command, path.toString(), "no [disk NAME] section");
        }
        if (!formatGiven)
        {
            throw error(command, path + ": [disk " + section.name() + "]", "needs format = raw (a format is never " +
                "probed)");
        }
        if (sections.size() > 1)
        {
            if (!topLevelLinks.isEmpty())
            {
                final Map.Entry<String, String> first = topLevelLinks.entrySet().iterator().next();
                throw error(command, first.getValue(), "belongs in each [disk NAME] section: every disk of a " +
                    "sidecar of several disks has its own " + first.getKey());
            }
            for (final DiskSection disk : sections)
            {
                // The name labels the disk's counters (state@NAME) and metrics: no separators in it.
                if (!disk.name().matches("[A-Za-z0-9._-]+"))
                {
                    throw error(command, disk.where(), "a disk name is letters, digits, '.', '_' and '-': " +
                        disk.name());
                }
            }
            refuseSharing(command, sections);
            // A fault of the first disk is that disk's alone, not the sidecar's: the command adds it per disk.
            removeOption(firstDiskFlags, "--inject-fault");
            // A disk's errors name its section (the first disk's flags must not claim them all).
            synchronized (ConfigFile.class)
            {
                sections.forEach(disk -> disk.fields().keySet().forEach(ORIGINS::remove));
            }
        }
        flags.addAll(firstDiskFlags);
        return new ConfigFile(path, sections);
    }

    /** No two disks may share a file, a guest socket or a link address. */
    private static void refuseSharing(final CommandSpec command, final List<DiskSection> sections)
    {
        final Map<String, Value> files = new HashMap<>();
        final Map<String, Value> sockets = new HashMap<>();
        final Map<String, Value> links = new HashMap<>();
        for (final DiskSection disk : sections)
        {
            for (final Map.Entry<String, List<Value>> field : disk.fields().entrySet())
            {
                final Value value = field.getValue().getLast();
                final String option = field.getKey().substring(2);
                if (FILE_FIELDS.contains(option))
                {
                    claim(command, files, Path.of(value.text()).toAbsolutePath().normalize().toString(), value,
                        disk, "file");
                }
                else if ("socket".equals(option))
                {
                    claim(command, sockets, Path.of(value.text()).toAbsolutePath().normalize().toString(), value,
                        disk, "socket");
                }
                else if (LINK_FIELDS.contains(option))
                {
                    final String address = linkAddress(command, option, value);
                    if (address != null)
                    {
                        claim(command, links, address, value, disk, "link address");
                    }
                }
            }
        }
    }

    private static void claim(
        final CommandSpec command, final Map<String, Value> claimed, final String key, final Value value,
        final DiskSection disk, final String what)
    {
        final Value earlier = claimed.putIfAbsent(key, value);
        if (earlier != null && !earlier.where().equals(value.where()))
        {
            throw error(command, value.where(), "[disk " + disk.name() + "] uses the " + what + " " + value.text() +
                " already given at " + earlier.where() + ": no two disks may share a " + what);
        }
    }

    /**
     * @return the address a link field takes on the host (an NBD port, an Aeron endpoint or aeron:ipc), or null
     * for port 0, which picks a free port each time.
     */
    private static String linkAddress(final CommandSpec command, final String option, final Value value)
    {
        try
        {
            if ("peer-control".equals(option) || "control-listen".equals(option))
            {
                final ListenAddress address = ListenAddress.parse(value.text());
                return address.port() == 0 ? null : "tcp " + address.host() + ":" + address.port();
            }
            return switch (PeerUri.parse(value.text()))
            {
                case NbdUri nbd -> nbd.port() == 0 ? null : "tcp " + nbd.host() + ":" + nbd.port();
                case AeronUri aeron -> aeron.isIpc() ? "aeron:ipc" : endpoint(aeron);
            };
        }
        catch (final CommandLine.TypeConversionException e)
        {
            throw error(command, value.where(), e.getMessage());
        }
    }

    private static String endpoint(final AeronUri aeron)
    {
        final ListenAddress address = ListenAddress.parse(aeron.channel().endpoint());
        return address.port() == 0 ? null : "udp " + address.host() + ":" + address.port();
    }

    private static String knownDiskFields(final CommandSpec command)
    {
        final StringBuilder known = new StringBuilder("file, format");
        for (final Map.Entry<String, String> field : new TreeMap<>(DISK_FIELDS).entrySet())
        {
            if (!"file".equals(field.getKey()) && command.findOption("--" + field.getValue()) != null)
            {
                known.append(", ").append(field.getKey());
            }
        }
        return known.toString();
    }

    private static void removeOption(final List<String> flags, final String name)
    {
        for (int i = flags.size() - 2; i >= 0; i--)
        {
            if (flags.get(i).equals(name))
            {
                flags.remove(i + 1);
                flags.remove(i);
            }
        }
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
