package io.understudy.cli.demo;

import io.understudy.cli.Understudy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code understudy demo}'s options are validated before anything starts: exit 2 and a one-line reason. */
class DemoArgumentsTest
{
    @TempDir
    Path dir;

    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private int run(final String... args)
    {
        final CommandLine commandLine = Understudy.commandLine();
        commandLine.setOut(new PrintWriter(out, true));
        commandLine.setErr(new PrintWriter(err, true));
        return commandLine.execute(args);
    }

    @Test
    void demoIsListedAndDocumentsItsOptions()
    {
        assertEquals(0, run("--help"));
        assertTrue(out.toString().contains("demo"), out.toString());
        assertEquals(0, run("demo", "--help"));
        for (final String option : new String[] {"--seconds", "--size", "--checkpoint-ms", "--transport", "--dir",
            "--keep", "--no-progress", "--seed", "--io"})
        {
            assertTrue(out.toString().contains(option), option + " missing from\n" + out);
        }
    }

    @Test
    void anUnknownTransportIsRefusedWithAReason()
    {
        assertEquals(2, run("demo", "--transport", "carrier-pigeon"));
        assertTrue(err.toString().contains("'carrier-pigeon' is not a transport"), err.toString());
    }

    @Test
    void sizesMustBeWholeMebibytesOfAtLeastEight()
    {
        assertEquals(2, run("demo", "--size", "4M"));
        assertTrue(err.toString().contains("--size must be a multiple of 1 MiB, at least 8 MiB"), err.toString());
        assertEquals(2, run("demo", "--size", "16388K"));
        assertEquals(2, run("demo", "--size", "lots"));
    }

    @Test
    void durationsMustBePositive()
    {
        assertEquals(2, run("demo", "--seconds", "0"));
        assertTrue(err.toString().contains("--seconds must be positive"), err.toString());
        assertEquals(2, run("demo", "--seconds", "NaN"));
        assertEquals(2, run("demo", "--checkpoint-ms", "0"));
        assertTrue(err.toString().contains("--checkpoint-ms must be positive"), err.toString());
    }

    @Test
    void theDirectoryMustExist() throws IOException
    {
        final Path file = Files.createFile(dir.resolve("not-a-dir"));
        assertEquals(2, run("demo", "--dir", file.toString()));
        assertTrue(err.toString().contains("is not a directory"), err.toString());
    }
}
