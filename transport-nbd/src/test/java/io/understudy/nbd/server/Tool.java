package io.understudy.nbd.server;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Runs a real NBD client tool, with /usr/bin first on PATH (nbdsh needs the system python3 with libnbd). */
final class Tool
{
    private static final String PATH = "/usr/bin:/bin:" + System.getenv().getOrDefault("PATH", "");

    private Tool()
    {
    }

    record Result(int exitCode, String output)
    {
    }

    /** Fails the test, naming the Debian package, if {@code tool} is not installed. */
    static void require(final String tool, final String debianPackage)
    {
        for (final String dir : PATH.split(File.pathSeparator))
        {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool)))
            {
                return;
            }
        }
        fail(tool + " is not installed: apt-get install " + debianPackage);
    }

    static Result run(final Path workDir, final int timeoutSeconds, final List<String> command)
        throws IOException, InterruptedException
    {
        final Path log = Files.createTempFile(workDir, "tool", ".log");
        final ProcessBuilder builder = new ProcessBuilder(command).directory(workDir.toFile())
            .redirectErrorStream(true).redirectOutput(log.toFile());
        builder.environment().put("PATH", PATH);
        builder.environment().put("LIBNBD_DEBUG", "0");
        final Process process = builder.start();
        try
        {
            if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS))
            {
                process.destroyForcibly().waitFor();
                fail(String.join(" ", command) + " timed out after " + timeoutSeconds + " s:\n"
                    + Files.readString(log, StandardCharsets.UTF_8));
            }
            return new Result(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        }
        finally
        {
            process.destroyForcibly();
            Files.deleteIfExists(log);
        }
    }

    /** Runs and asserts exit code 0; returns the output. */
    static String ok(final Path workDir, final int timeoutSeconds, final String... command)
        throws IOException, InterruptedException
    {
        final Result result = run(workDir, timeoutSeconds, List.of(command));
        assertEquals(0, result.exitCode(), String.join(" ", command) + " failed:\n" + result.output());
        return result.output();
    }
}
