package io.understudy.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** An {@code understudy} process started through {@code bin/understudy}, as a user starts it. */
final class DaemonProcess implements AutoCloseable
{
    private static final Path ROOT = Path.of(System.getenv().getOrDefault("UNDERSTUDY_ROOT", "..")).toAbsolutePath();

    private final Process process;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    private final List<String> transcript = new ArrayList<>();

    DaemonProcess(final String... args) throws IOException
    {
        final List<String> command = new ArrayList<>();
        command.add(ROOT.resolve("bin/understudy").toString());
        command.addAll(List.of(args));
        process = new ProcessBuilder(command).redirectErrorStream(true).start();
        final Thread reader = Thread.ofPlatform().daemon(true).name("daemon-output").start(() ->
        {
            try (BufferedReader in = new BufferedReader(
                new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8)))
            {
                String line;
                while ((line = in.readLine()) != null)
                {
                    lines.add(line);
                }
            }
            catch (final IOException ignored)
            {
                // The process ended; its exit code tells the test what happened.
            }
        });
        reader.setUncaughtExceptionHandler((t, e) -> e.printStackTrace());
    }

    /** Waits for an output line matching {@code regex}; returns the match (groups usable). */
    Matcher awaitLine(final String regex, final Duration timeout) throws InterruptedException
    {
        final Pattern pattern = Pattern.compile(regex);
        final long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline)
        {
            final String line = lines.poll(50, TimeUnit.MILLISECONDS);
            if (line != null)
            {
                transcript.add(line);
                final Matcher matcher = pattern.matcher(line);
                if (matcher.find())
                {
                    return matcher;
                }
            }
            else if (!process.isAlive() && lines.isEmpty())
            {
                break;
            }
        }
        throw new AssertionError("no line matching /" + regex + "/ within " + timeout + "; output so far:\n" +
            String.join("\n", transcript));
    }

    /** Sends SIGTERM and waits for the exit code. */
    int terminate(final Duration timeout) throws InterruptedException
    {
        process.toHandle().destroy();
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS))
        {
            process.destroyForcibly();
            throw new AssertionError("daemon did not stop within " + timeout + " of SIGTERM");
        }
        return process.exitValue();
    }

    /** Sends {@code signal} (e.g. STOP, CONT) to the process: {@code bin/understudy} execs the JVM. */
    void signal(final String signal) throws IOException, InterruptedException
    {
        final Process kill = new ProcessBuilder("kill", "-" + signal, String.valueOf(process.pid())).start();
        if (kill.waitFor() != 0)
        {
            throw new AssertionError("kill -" + signal + " " + process.pid() + " failed");
        }
    }

    /** SIGKILL, as a crash: no handler runs, sockets are closed by the kernel. */
    void kill() throws InterruptedException
    {
        process.destroyForcibly();
        process.waitFor();
    }

    int waitFor(final Duration timeout) throws InterruptedException
    {
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS))
        {
            process.destroyForcibly();
            throw new AssertionError("process did not exit within " + timeout);
        }
        return process.exitValue();
    }

    long pid()
    {
        return process.pid();
    }

    /** Everything the process printed so far (drains pending lines). */
    String output()
    {
        lines.drainTo(transcript);
        return String.join("\n", transcript);
    }

    @Override
    public void close()
    {
        // A stopped process takes SIGKILL as well; no CONT needed.
        process.destroyForcibly();
    }
}
