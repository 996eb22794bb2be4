package io.understudy.cli.demo;

import io.understudy.cli.InProcessCli;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
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

    private final InProcessCli cli = new InProcessCli();
    private final StringWriter out = cli.out;
    private final StringWriter err = cli.err;


    @Test
    void demoIsListedAndDocumentsItsOptions()
    {
        assertEquals(0, cli.run("--help"));
        assertTrue(out.toString().contains("demo"), out.toString());
        assertEquals(0, cli.run("demo", "--help"));
        for (final String option : new String[] {"--seconds", "--size", "--checkpoint-ms", "--transport", "--dir",
            "--keep", "--no-progress", "--seed", "--io"})
        {
            assertTrue(out.toString().contains(option), option + " missing from\n" + out);
        }
    }

    @Test
    void anUnknownTransportIsRefusedWithAReason()
    {
        assertEquals(2, cli.run("demo", "--transport", "carrier-pigeon"));
        assertTrue(err.toString().contains("'carrier-pigeon' is not a transport"), err.toString());
    }

    @Test
    void sizesMustBeWholeMebibytesOfAtLeastEight()
    {
        assertEquals(2, cli.run("demo", "--size", "4M"));
        assertTrue(err.toString().contains("--size must be a multiple of 1 MiB, at least 8 MiB"), err.toString());
        assertEquals(2, cli.run("demo", "--size", "16388K"));
        assertEquals(2, cli.run("demo", "--size", "lots"));
    }

    @Test
    void durationsMustBePositive()
    {
        assertEquals(2, cli.run("demo", "--seconds", "0"));
        assertTrue(err.toString().contains("--seconds must be positive"), err.toString());
        assertEquals(2, cli.run("demo", "--seconds", "NaN"));
        assertEquals(2, cli.run("demo", "--checkpoint-ms", "0"));
        assertTrue(err.toString().contains("--checkpoint-ms must be positive"), err.toString());
    }

    @Test
    void theDirectoryMustExist() throws IOException
    {
        final Path file = Files.createFile(dir.resolve("not-a-dir"));
        assertEquals(2, cli.run("demo", "--dir", file.toString()));
        assertTrue(err.toString().contains("is not a directory"), err.toString());
    }
}
