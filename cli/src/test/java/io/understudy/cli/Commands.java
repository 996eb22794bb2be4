package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** Short-lived processes for the ITs: qemu-io against the exports and the {@code understudy} thin clients. */
final class Commands
{
    private static final Path ROOT = Path.of(System.getenv().getOrDefault("UNDERSTUDY_ROOT", "..")).toAbsolutePath();
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

    /** {@code understudy status --json}, as an operator runs it. */
    static JsonNode statusCli(final Path control) throws IOException, InterruptedException
    {
        return JSON.readTree(understudyOk("status", "--json", "--control", control.toString()));
    }

    /** The same status straight from the control socket (no JVM start per query). */
    static JsonNode status(final Path control)
    {
        return ControlClient.execute(control, "status", ControlServer.JSON.createObjectNode());
    }
}
