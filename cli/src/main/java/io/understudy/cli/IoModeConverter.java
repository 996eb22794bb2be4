package io.understudy.cli;

import io.understudy.engine.io.IoMode;
import picocli.CommandLine;

/** Parses {@code --io auto|uring|threads}. */
public final class IoModeConverter implements CommandLine.ITypeConverter<IoMode>
{
    @Override
    public IoMode convert(final String value)
    {
        return switch (value)
        {
            case "auto" -> IoMode.AUTO;
            case "uring" -> IoMode.URING;
            case "threads" -> IoMode.THREADS;
            default -> throw new CommandLine.TypeConversionException(
                "--io must be auto, uring or threads, not '" + value + "'");
        };
    }
}
