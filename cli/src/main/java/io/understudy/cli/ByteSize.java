package io.understudy.cli;

import picocli.CommandLine;

import java.util.Locale;

/** Parses sizes such as {@code 4096}, {@code 512K}, {@code 64MiB}, {@code 10G} (binary multiples). */
public final class ByteSize implements CommandLine.ITypeConverter<Long>
{
    @Override
    public Long convert(final String value)
    {
        return parse(value);
    }

    public static long parse(final String text)
    {
        final String value = text.trim().toUpperCase(Locale.ROOT);
        int end = value.length();
        while (end > 0 && !Character.isDigit(value.charAt(end - 1)))
        {
            end--;
        }
        final String number = value.substring(0, end);
        final String unit = value.substring(end).replace("IB", "").replace("B", "");
        final int shift = switch (unit)
        {
            case "" -> 0;
            case "K" -> 10;
            case "M" -> 20;
            case "G" -> 30;
            case "T" -> 40;
            case "P" -> 50;
            default -> throw new CommandLine.TypeConversionException(
                "'" + text + "' is not a size: use bytes or a K, M, G, T suffix (e.g. 10G)");
        };
        final long base;
        try
        {
            base = Long.parseLong(number);
        }
        catch (final NumberFormatException e)
        {
            throw new CommandLine.TypeConversionException(
                "'" + text + "' is not a size: use bytes or a K, M, G, T suffix (e.g. 10G)");
        }
        if (base <= 0 || base > (Long.MAX_VALUE >> shift))
        {
            throw new CommandLine.TypeConversionException("'" + text + "' is out of range: it must be positive");
        }
        return base << shift;
    }
}
