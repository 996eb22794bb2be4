package io.understudy.cli;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code understudy demo} through the launcher, as a user runs it: both modes verify every byte of the survivor,
 * the summary table has a row per mode, and the temporary files are gone afterwards.
 */
class DemoIT
{
    private static final Duration RUN = Duration.ofSeconds(180);
    private static final long SIZE = 16L << 20;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"aeron", "nbd"})
    void bothModesSurviveAPrimaryCrashWithEveryByteVerified(final String transport) throws Exception
    {
        final int exit;
        final String output;
        try (DaemonProcess demo = new DaemonProcess("demo", "--seconds", "3", "--size", "16M", "--seed", "7",
            "--transport", transport, "--dir", dir.toString()))
        {
            exit = demo.waitFor(RUN);
            output = demo.output();
        }
        assertEquals(0, exit, output);
        assertTrue(output.contains("16 MiB disks, 3.0 s of guest writes per mode, a checkpoint every 100 ms, " +
            "transport " + transport), output);
        assertTrue(Pattern.compile("(?m)^mode +MiB/s +IOPS +ckpts +ckpt p50 +ckpt p99 +pause p99 +rolled back " +
            "+failover +verified B +result$").matcher(output).find(), output);
        for (final String mode : new String[] {"non-shared", "shared"})
        {
            final Matcher row = Pattern.compile("(?m)^" + mode + " +([0-9.]+) +([0-9]+) +([0-9]+) +([0-9.]+) ms " +
                "+([0-9.]+) ms +([0-9.]+) ms +([0-9]+) blk +([0-9.]+) ms +([0-9]+) +OK$").matcher(output);
            assertTrue(row.find(), mode + " row missing or not OK:\n" + output);
            assertTrue(Double.parseDouble(row.group(1)) > 0, "no throughput: " + row.group());
            assertTrue(Long.parseLong(row.group(3)) >= 2, "too few checkpoints: " + row.group());
            assertEquals(SIZE, Long.parseLong(row.group(9)), row.group());
            assertTrue(output.contains(String.format("%-10s survivor: %d bytes equal to the last completed checkpoint",
                mode + ":", SIZE)), output);
            assertTrue(Pattern.compile(Pattern.quote(mode + ":") + " +primary crashed [0-9.]+ s in, [1-9][0-9]* " +
                "writes in flight").matcher(output).find(), output);
        }
        assertFalse(output.contains("FAILED"), output);
        assertFalse(output.contains("SEVERE"), output);
        try (Stream<Path> left = Files.list(dir))
        {
            assertEquals(0, left.count(), "temporary files left in " + dir);
        }
    }
}
