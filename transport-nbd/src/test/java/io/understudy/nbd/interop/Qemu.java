package io.understudy.nbd.interop;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A {@code qemu-system-x86_64 -M none} without a guest (spec 7): block graph from {@code -drive}, control over
 * {@link Qmp}, block I/O through HMP {@code qemu-io}. HMP's qemu-io prints to QEMU's stdout, not into the QMP
 * reply, so QEMU runs under {@code stdbuf -oL}: each line is in the log before the reply arrives and
 * {@link #qemuIo} can check it. {@link #close()} always kills the process.
 */
final class Qemu implements AutoCloseable
{
    static final String BINARY = "qemu-system-x86_64";
    static final long TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(10);
    private static final String PATH = "/usr/bin:/bin:" + System.getenv().getOrDefault("PATH", "");

    private final Process process;
    private final Path log;
    private final Qmp qmp;
    private final Thread reaper;
    private long logRead;

    private Qemu(final Process process, final Path log, final Qmp qmp, final Thread reaper)
    {
        this.process = process;
        this.log = log;
        this.qmp = qmp;
        this.reaper = reaper;
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
        fail(tool + " is not installed: apt-get install --no-install-recommends " + debianPackage);
    }

    /** Starts QEMU with {@code drives} (the {@code -drive} option values) and connects QMP. */
    static Qemu start(final Path dir, final String name, final List<String> drives) throws IOException
    {
        require(BINARY, "qemu-system-x86");
        require("stdbuf", "coreutils");
        final Path socket = dir.resolve(name + ".qmp");
        final Path log = dir.resolve(name + ".log");
        final List<String> command = new ArrayList<>(List.of("stdbuf", "-oL", BINARY, "-M", "none", "-nodefaults",
            "-display", "none", "-qmp", "unix:" + socket + ",server=on,wait=off"));
        for (final String drive : drives)
        {
            command.add("-drive");
            command.add(drive);
        }
        final ProcessBuilder builder = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
            .redirectOutput(log.toFile());
        builder.environment().put("PATH", PATH);
        final Process process = builder.start();
        // A test JVM stopped by SIGTERM (e.g. a hung run killed by CI) must not leave QEMU behind.
        final Thread reaper = Thread.ofPlatform().unstarted(process::destroyForcibly);
        Runtime.getRuntime().addShutdownHook(reaper);
        try
        {
            return new Qemu(process, log, Qmp.connect(socket, TIMEOUT_NANOS, process.toHandle()), reaper);
        }
        catch (final IOException | RuntimeException | AssertionError ex)
        {
            process.destroyForcibly();
            Runtime.getRuntime().removeShutdownHook(reaper);
            throw new IOException("QEMU did not come up: " + String.join(" ", command) + "\n" +
                Files.readString(log, StandardCharsets.UTF_8), ex);
        }
    }

    Qmp qmp()
    {
        return qmp;
    }

    /**
     * Runs {@code qemu-io <device> "<command>"} over HMP and asserts QEMU printed exactly {@code expected} as the
     * first line of its output for it (e.g. "wrote 65536/65536 bytes at offset 0"), so a failed or partial
     * request, or a pattern mismatch on a read, fails the test.
     */
    void qemuIo(final String device, final String command, final String expected) throws IOException
    {
        assertEquals("", qmp.hmp("qemu-io " + device + " \"" + command + "\""), "HMP reply to qemu-io " + command);
        final String output = newOutput();
        final String first = output.lines().findFirst().orElse("");
        assertEquals(expected, first, "qemu-io " + device + " \"" + command + "\" printed:\n" + output);
    }

    /** @return what QEMU printed since the last call. */
    String newOutput() throws IOException
    {
        final byte[] all = Files.readAllBytes(log);
        final String output = new String(all, (int)logRead, all.length - (int)logRead, StandardCharsets.UTF_8);
        logRead = all.length;
        return output;
    }

    /** SIGKILL, as a crash of the host: nothing is flushed or closed cleanly. */
    void kill() throws InterruptedException
    {
        process.destroyForcibly();
        assertTrue(process.waitFor(10, TimeUnit.SECONDS), "QEMU did not die on SIGKILL");
    }

    /** QMP {@code quit}, its SHUTDOWN event, and the exit. */
    void quit() throws IOException, InterruptedException
    {
        qmp.execute("quit");
        assertEquals(Map.of("guest", false, "reason", "host-qmp-quit"), qmp.awaitEvent("SHUTDOWN").get("data"));
        if (!process.waitFor(10, TimeUnit.SECONDS))
        {
            fail("QEMU did not exit after quit:\n" + newOutput());
        }
        assertEquals(0, process.exitValue(), "QEMU's exit status after quit:\n" + newOutput());
    }

    @Override
    public void close() throws IOException, InterruptedException
    {
        try
        {
            qmp.close();
        }
        finally
        {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
            Runtime.getRuntime().removeShutdownHook(reaper);
        }
    }
}
