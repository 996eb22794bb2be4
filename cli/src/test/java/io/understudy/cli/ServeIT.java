package io.understudy.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code understudy serve} end to end: the launcher, real NBD clients, and a clean stop on SIGTERM. */
class ServeIT
{
    private static final Duration STARTUP = Duration.ofSeconds(60);
    private static final Duration STOP = Duration.ofSeconds(20);

    @TempDir
    Path dir;

    @Test
    void servesACreatedImageOverAUnixSocketAndStopsCleanlyOnSigterm() throws Exception
    {
        final Path image = dir.resolve("disk.img");
        final Path socket = dir.resolve("nbd.sock");
        try (DaemonProcess daemon = new DaemonProcess(
            "serve", "--disk", image.toString(), "--create", "64M", "--socket", socket.toString()))
        {
            daemon.awaitLine("created sparse image", STARTUP);
            final Matcher attach = daemon.awaitLine("attach with: qemu-system-x86_64 -blockdev (\\S+)", STARTUP);
            assertTrue(attach.group(1).contains("server.type=unix,server.path=" + socket), attach.group(1));

            final String uri = "nbd+unix:///disk?socket=" + socket;
            run("qemu-io", "-f", "raw", "-c", "write -P 0xab 1M 1M", "-c", "write -P 0xcd 63M 4k", uri);
            run("qemu-io", "-f", "raw", "-c", "read -P 0xab 1M 1M", "-c", "read -P 0 0 1M",
                "-c", "read -P 0xcd 63M 4k", uri);
            final String info = run("qemu-img", "info", "--output=json", "nbd+unix:///?socket=" + socket);
            assertTrue(info.contains("\"virtual-size\": 67108864"), info);

            assertEquals(0, daemon.terminate(STOP), daemon.output());
            assertTrue(daemon.output().contains("stopped cleanly"), daemon.output());
        }
        final byte[] bytes = Files.readAllBytes(image);
        assertEquals(64 << 20, bytes.length);
        final byte[] expected = new byte[1 << 20];
        Arrays.fill(expected, (byte)0xab);
        assertArrayEquals(expected, Arrays.copyOfRange(bytes, 1 << 20, 2 << 20));
        assertEquals((byte)0xcd, bytes[(63 << 20) + 4095]);
        assertEquals(0, bytes[(63 << 20) + 4096]);
    }

    @Test
    void servesOverTcpOnTheLoopbackAndReportsTheBoundPort() throws Exception
    {
        final Path image = dir.resolve("tcp.img");
        Files.write(image, new byte[1 << 20]);
        try (DaemonProcess daemon = new DaemonProcess(
            "serve", "--disk", image.toString(), "--listen", ":0", "--export", "vm1", "--io", "threads"))
        {
            final Matcher attach = daemon.awaitLine(
                "server.type=inet,server.host=127.0.0.1,server.port=(\\d+)", STARTUP);
            final int port = Integer.parseInt(attach.group(1));
            assertNotEquals(0, port);
            final String list = run("nbdinfo", "--list", "nbd://127.0.0.1:" + port);
            assertTrue(list.contains("vm1"), list);
            run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 4k 8k", "nbd://127.0.0.1:" + port + "/vm1");
            run("qemu-io", "-f", "raw", "-c", "read -P 0x5a 4k 8k", "nbd://127.0.0.1:" + port + "/");
            assertEquals(0, daemon.terminate(STOP), daemon.output());
        }
        final byte[] bytes = Files.readAllBytes(image);
        assertEquals(0x5a, bytes[4096] & 0xff);
        assertEquals(0x5a, bytes[12287] & 0xff);
        assertEquals(0, bytes[12288]);
    }

    @Test
    void readOnlyExportRefusesWritesAndKeepsData() throws Exception
    {
        final Path image = dir.resolve("ro.img");
        final byte[] original = new byte[1 << 20];
        Arrays.fill(original, (byte)7);
        Files.write(image, original);
        final Path socket = dir.resolve("ro.sock");
        try (DaemonProcess daemon = new DaemonProcess(
            "serve", "--disk", image.toString(), "--socket", socket.toString(), "--read-only"))
        {
            daemon.awaitLine("attach with", STARTUP);
            final String uri = "nbd+unix:///?socket=" + socket;
            final ProcessResult write = exec("qemu-io", "-f", "raw", "-c", "write -P 1 0 4k", uri);
            assertTrue(write.output.contains("Operation not permitted") || write.output.contains("read-only") ||
                write.exitCode != 0, write.output);
            run("qemu-io", "-f", "raw", "-r", "-c", "read -P 7 0 1M", uri);
            assertEquals(0, daemon.terminate(STOP), daemon.output());
        }
        assertArrayEquals(original, Files.readAllBytes(image));
    }

    /** AX-22: while a disk is served read-write nobody else may open it; the lock goes with the daemon. */
    @Test
    void servedDiskIsLockedAgainstOtherWritersUntilTheDaemonStops() throws Exception
    {
        final Path image = dir.resolve("disk.img");
        try (DaemonProcess daemon = new DaemonProcess(
            "serve", "--disk", image.toString(), "--create", "1M", "--socket", dir.resolve("a.sock").toString()))
        {
            daemon.awaitLine("NBD URI", STARTUP);
            try (DaemonProcess second = new DaemonProcess(
                "serve", "--disk", image.toString(), "--socket", dir.resolve("b.sock").toString()))
            {
                assertEquals(1, second.waitFor(STARTUP), second.output());
                assertTrue(second.output().contains("understudy: " + image + ": in use by another process"),
                    second.output());
            }
            final ProcessResult write = exec("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 4k", image.toString());
            assertEquals(1, write.exitCode, write.output);
            assertTrue(write.output.contains("Failed to lock byte"), write.output);
            assertEquals(0, daemon.terminate(STOP), daemon.output());
        }
        run("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 4k", image.toString());
        assertEquals((byte)0x5a, Files.readAllBytes(image)[4095]);
    }

    @Test
    void missingImageFailsFastWithAReason() throws Exception
    {
        try (DaemonProcess daemon = new DaemonProcess(
            "serve", "--disk", dir.resolve("nope.img").toString(), "--socket", dir.resolve("s").toString()))
        {
            assertEquals(1, daemon.waitFor(STARTUP));
            assertTrue(daemon.output().contains("no such file"), daemon.output());
        }
    }

    private record ProcessResult(int exitCode, String output)
    {
    }

    private static ProcessResult exec(final String... command) throws IOException, InterruptedException
    {
        final Process process = new ProcessBuilder(List.of(command)).redirectErrorStream(true).start();
        final String output = new String(process.getInputStream().readAllBytes());
        if (!process.waitFor(60, TimeUnit.SECONDS))
        {
            process.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " timed out");
        }
        return new ProcessResult(process.exitValue(), output);
    }

    private static String run(final String... command) throws IOException, InterruptedException
    {
        final ProcessResult result = exec(command);
        assertEquals(0, result.exitCode, String.join(" ", command) + "\n" + result.output);
        assertTrue(!result.output.contains("Pattern verification failed"), result.output);
        return result.output;
    }
}
