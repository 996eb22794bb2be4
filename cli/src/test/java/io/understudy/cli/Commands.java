package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Short-lived processes for the ITs: qemu-io and nbdsh against the exports and the {@code understudy} thin
 * clients.
 */
final class Commands
{
    private static final Path ROOT = Path.of(System.getenv().getOrDefault("UNDERSTUDY_ROOT", "..")).toAbsolutePath();
    /** nbdsh runs {@code python3 -m nbd}: the distribution's python3 has the libnbd bindings, a pyenv one not. */
    private static final String SYSTEM_PATH = "/usr/bin:/bin:" + System.getenv().getOrDefault("PATH", "");
    private static final ObjectMapper JSON = new ObjectMapper();

    record Result(int exitCode, String output)
    {
    }

    private Commands()
    {
    }

    static Result exec(final String... command) throws IOException, InterruptedException
    {
        final Process process = new ProcessBuilder(List.of(command)).redirectErrorStream(true).start();
        final String output = new String(process.getInputStream().readAllBytes());
        if (!process.waitFor(60, TimeUnit.SECONDS))
        {
            process.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " timed out");
        }
        return new Result(process.exitValue(), output);
    }

    /** Runs qemu-io on {@code uri} with the given -c commands; every command must succeed and verify. */
    static String qemuIo(final String uri, final String... commands) throws IOException, InterruptedException
    {
        final List<String> command = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (final String c : commands)
        {
            command.add("-c");
            command.add(c);
        }
        command.add(uri);
        final Result result = exec(command.toArray(String[]::new));
        assertEquals(0, result.exitCode, String.join(" ", command) + "\n" + result.output);
        assertFalse(result.output.contains("Pattern verification failed"), String.join(" ", command) + "\n" +
            result.output);
        assertFalse(result.output.contains("failed:"), String.join(" ", command) + "\n" + result.output);
        return result.output;
    }

    /** Runs qemu-io with the single {@code command}, which must fail with "{@code what} failed: {@code error}". */
    static void qemuIoFails(final String uri, final String what, final String error, final String command)
        throws IOException, InterruptedException
    {
        final Result result = exec("qemu-io", "-f", "raw", "-c", command, uri);
        assertTrue(result.output().contains(what + " failed: " + error), command + "\n" + result.output());
    }

    /** Runs qemu-io with the single {@code command} on an export nobody serves: it must not even connect. */
    static void qemuIoCannotConnect(final String uri, final String command) throws IOException, InterruptedException
    {
        final Result result = exec("qemu-io", "-f", "raw", "-c", command, uri);
        assertNotEquals(0, result.exitCode(), command + "\n" + result.output());
        assertTrue(result.output().contains("can't open device " + uri + ": Failed to connect"),
            command + "\n" + result.output());
    }

    /**
     * Starts nbdsh connected to {@code uri} running the Python {@code script} (written to a file in {@code dir};
     * the handle is {@code h}); nothing is waited for: see {@link #finish}.
     */
    static Process nbdsh(final String uri, final Path dir, final String script) throws IOException
    {
        final Path file = Files.createTempFile(dir, "nbdsh", ".py");
        Files.writeString(file, script);
        final ProcessBuilder builder = new ProcessBuilder("nbdsh", "-u", uri, "-c",
            "exec(open('" + file + "').read())").redirectErrorStream(true);
        builder.environment().put("PATH", SYSTEM_PATH);
        return builder.start();
    }

    /** Waits until a client process signals progress by creating {@code path}. */
    static void awaitFile(final Path path, final Duration timeout) throws InterruptedException
    {
        final long deadline = System.nanoTime() + timeout.toNanos();
        while (!Files.exists(path))
        {
            if (System.nanoTime() - deadline >= 0)
            {
                throw new AssertionError(path + " never appeared within " + timeout);
            }
            Thread.sleep(20);
        }
    }

    /** Waits for a started nbdsh (or any process) that must exit 0 within {@code timeout}; returns its output. */
    static String finish(final Process process, final Duration timeout) throws IOException, InterruptedException
    {
        final String output = new String(process.getInputStream().readAllBytes());
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS))
        {
            process.destroyForcibly();
            throw new AssertionError("process did not exit within " + timeout + ":\n" + output);
        }
        assertEquals(0, process.exitValue(), output);
        return output;
    }

    static String unixUri(final Path socket)
    {
        return "nbd+unix:///?socket=" + socket;
    }

    /** Runs {@code bin/understudy args...}. */
    static Result understudy(final String... args) throws IOException, InterruptedException
    {
        final List<String> command = new ArrayList<>();
        command.add(ROOT.resolve("bin/understudy").toString());
        command.addAll(List.of(args));
        return exec(command.toArray(String[]::new));
    }

    /** Runs a thin client command that must succeed; returns its output. */
    static String understudyOk(final String... args) throws IOException, InterruptedException
    {
        final Result result = understudy(args);
        assertEquals(0, result.exitCode, "understudy " + String.join(" ", args) + "\n" + result.output);
        return result.output;
    }

    /**
     * A thin client command that must succeed, its printed {@code return} object parsed: the last line that is a
     * JSON object, since stderr (merged here) may carry progress lines before it.
     */
    static JsonNode understudyJson(final String... args) throws IOException, InterruptedException
    {
        final String output = understudyOk(args);
        final List<String> lines = output.lines().filter(line -> line.startsWith("{")).toList();
        assertFalse(lines.isEmpty(), "no JSON object in:\n" + output);
        return JSON.readTree(lines.getLast());
    }

    /** {@code understudy status --json}, as an operator runs it. */
    static JsonNode statusCli(final Path control) throws IOException, InterruptedException
    {
        return understudyJson("status", "--json", "--control", control.toString());
    }

    /** Copies every byte an export serves into {@code image} (qemu-img convert), to compare it with a file. */
    static void exportImage(final String uri, final Path image) throws IOException, InterruptedException
    {
        final Result result = exec("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, image.toString());
        assertEquals(0, result.exitCode, "qemu-img convert " + uri + "\n" + result.output);
    }

    /** The same status straight from the control socket (no JVM start per query). */
    static JsonNode status(final Path control)
    {
        return ControlClient.execute(control, "status", ControlServer.JSON.createObjectNode());
    }

    /** Polls {@link #status} until its state is {@code state} (10 s at most); returns that status. */
    static JsonNode awaitState(final Path control, final String state) throws InterruptedException
    {
        return awaitStatus(control, "/state", state);
    }

    /** Polls {@link #status} until the field at {@code pointer} reads {@code value} (10 s at most). */
    static JsonNode awaitStatus(final Path control, final String pointer, final String value)
        throws InterruptedException
    {
        final long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (true)
        {
            final JsonNode status = status(control);
            if (value.equals(status.at(pointer).asText()))
            {
                return status;
            }
            if (System.nanoTime() - deadline >= 0)
            {
                throw new AssertionError(pointer + " never became " + value + ": " + status);
            }
            Thread.sleep(20);
        }
    }
}
