package io.understudy.cli;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.FaultInjectingDevice;
import picocli.CommandLine;

import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * One {@code --inject-fault TARGET:KIND:NTH[+]:ERRNO} rule, a testing aid in the manner of QEMU's blkdebug:
 * the {@code nth} request of {@code kind} to {@code target} (every one from then on with {@code +}) fails with
 * {@code errno} and never reaches the file.
 */
record InjectedFault(String target, FaultInjectingDevice.Kind kind, long nth, boolean onwards, int errno)
{
    static final String DESCRIPTION = "TESTING AID, never in production: fail the NTH request (from 1; with + " +
        "every one from the NTH on) of KIND (read, write, flush, discard, zeroes) to TARGET with ERRNO (a name, " +
        "e.g. EIO, ENOSPC), like QEMU's blkdebug. Repeatable.";

    /** Wraps {@code device} in a {@link FaultInjectingDevice} armed with the rules for {@code target}, if any. */
    static BlockDevice wrap(final List<InjectedFault> faults, final String target, final BlockDevice device)
    {
        FaultInjectingDevice injecting = null;
        for (final InjectedFault fault : faults)
        {
            if (fault.target.equals(target))
            {
                injecting = injecting == null ? new FaultInjectingDevice(device) : injecting;
                if (fault.onwards)
                {
                    injecting.failFrom(fault.kind, fault.nth, fault.errno);
                }
                else
                {
                    injecting.failNth(fault.kind, fault.nth, fault.errno);
                }
            }
        }
        return injecting == null ? device : injecting;
    }

    /** Throws {@link UserException} unless every rule names one of {@code targets}, one rule per target and kind. */
    static void validate(final List<InjectedFault> faults, final Set<String> targets)
    {
        for (int i = 0; i < faults.size(); i++)
        {
            final InjectedFault fault = faults.get(i);
            if (!targets.contains(fault.target))
            {
                throw new UserException("--inject-fault target '" + fault.target + "' must be one of " +
                    String.join(", ", targets.stream().sorted().toList()) + " for this command");
            }
            for (int j = 0; j < i; j++)
            {
                if (faults.get(j).target.equals(fault.target) && faults.get(j).kind == fault.kind)
                {
                    throw new UserException("--inject-fault: more than one rule for " + fault.target + ":" +
                        kindName(fault.kind));
                }
            }
        }
    }

    private static String kindName(final FaultInjectingDevice.Kind kind)
    {
        return kind == FaultInjectingDevice.Kind.WRITE_ZEROES ? "zeroes" : kind.name().toLowerCase(Locale.ROOT);
    }

    /** Parses the option's value; the target is checked later against the command's devices. */
    static final class Converter implements CommandLine.ITypeConverter<InjectedFault>
    {
        @Override
        public InjectedFault convert(final String value)
        {
            final String[] parts = value.split(":", -1);
            if (parts.length != 4)
            {
                throw bad(value, "expected TARGET:KIND:NTH[+]:ERRNO");
            }
            final FaultInjectingDevice.Kind kind = switch (parts[1])
            {
                case "read" -> FaultInjectingDevice.Kind.READ;
                case "write" -> FaultInjectingDevice.Kind.WRITE;
                case "flush" -> FaultInjectingDevice.Kind.FLUSH;
                case "discard" -> FaultInjectingDevice.Kind.DISCARD;
                case "zeroes" -> FaultInjectingDevice.Kind.WRITE_ZEROES;
                default -> throw bad(value, "KIND must be read, write, flush, discard or zeroes, not '" +
                    parts[1] + "'");
            };
            final boolean onwards = parts[2].endsWith("+");
            final String number = onwards ? parts[2].substring(0, parts[2].length() - 1) : parts[2];
            final long nth;
            try
            {
                nth = Long.parseLong(number);
            }
            catch (final NumberFormatException e)
            {
                throw bad(value, "NTH must be a request number, not '" + parts[2] + "'");
            }
            if (nth < 1)
            {
                throw bad(value, "NTH counts from 1, not " + nth);
            }
            return new InjectedFault(parts[0], kind, nth, onwards, errno(value, parts[3]));
        }

        private static int errno(final String value, final String name)
        {
            // Errno names the values it knows; anything else prints as "errno N" and is refused here.
            for (int errno = 1; errno < 256; errno++)
            {
                if (Errno.name(errno).equals(name))
                {
                    return errno;
                }
            }
            throw bad(value, "ERRNO must be a name such as EIO or ENOSPC, not '" + name + "'");
        }

        private static CommandLine.TypeConversionException bad(final String value, final String why)
        {
            return new CommandLine.TypeConversionException("--inject-fault '" + value + "': " + why);
        }
    }
}
