package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.understudy.engine.replication.ReplicationSecondary;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.regex.Matcher;

import static io.understudy.cli.Commands.qemuIo;
import static io.understudy.cli.Commands.understudy;
import static io.understudy.cli.Commands.understudyOk;
import static io.understudy.cli.Commands.unixUri;
import static io.understudy.cli.DiskFiles.fill;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_MS;
import static io.understudy.cli.ReplicaTestSettings.HEARTBEAT_TIMEOUT_MS;
import static io.understudy.cli.ReplicaTestSettings.MIB;
import static io.understudy.cli.ReplicaTestSettings.SIZE;
import static io.understudy.cli.ReplicaTestSettings.STARTUP;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The counters file and error log at process level: a replication pair started through {@code bin/understudy},
 * qemu-io writing through both exports, {@code understudy stat} following the figures without asking the daemons,
 * answering for a SIGSTOPped daemon (and saying its heartbeat stopped), and {@code understudy errors} reading a
 * daemon's errors after kill -9.
 */
class CountersIT
{
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration SETTLE = Duration.ofSeconds(20);
    private static final int CLUSTER = 64 * 1024;
    private static final int HIDDEN_CLUSTER = ReplicationSecondary.DEFAULT_HIDDEN_CLUSTER_SIZE;

    @TempDir
    Path dir;

    private final List<DaemonProcess> daemons = new ArrayList<>();

    @AfterEach
    void killLeftovers()
    {
        daemons.forEach(DaemonProcess::close);
    }

    @Test
    void statFollowsThePairWithoutTheDaemonsAnswersForAStoppedOneAndErrorsSurviveKill9() throws Exception
    {
        final Path secondaryControl = dir.resolve("secondary.ctl");
        final Path primaryControl = dir.resolve("primary.ctl");
        final Path pvm = dir.resolve("pvm.sock");
        final Path svm = dir.resolve("svm.sock");
        fill(dir.resolve("s.img"), SIZE, 0x11);
        fill(dir.resolve("p.img"), SIZE, 0x11);
        final DaemonProcess secondary = start("secondary", "--disk", dir.resolve("s.img").toString(),
            "--hidden", dir.resolve("hidden.img").toString(), "--active", dir.resolve("active.img").toString(),
            "--socket", svm.toString(), "--control", secondaryControl.toString(),
            "--listen", "nbd://127.0.0.1:0/colo", "--io", "threads", "--cow-copy", "kernel");
        secondary.awaitLine("counters in " + secondaryControl + ".counters", STARTUP);
        final Matcher ready = secondary.awaitLine(
            "secondary ready .*forwarding sink nbd://127\\.0\\.0\\.1:(\\d+)/colo, control link 127\\.0\\.0\\.1:(\\d+)",
            STARTUP);
        final DaemonProcess primary = start("primary", "--disk", dir.resolve("p.img").toString(),
            "--socket", pvm.toString(), "--control", primaryControl.toString(), "--io", "threads",
            "--heartbeat-ms", String.valueOf(HEARTBEAT_MS), "--heartbeat-timeout-ms",
            String.valueOf(HEARTBEAT_TIMEOUT_MS), "--io-timeout-ms", "3000",
            "--peer", "nbd://127.0.0.1:" + ready.group(1) + "/colo", "--peer-control", "127.0.0.1:" + ready.group(2),
            "--metrics-listen", "127.0.0.1:0");
        final Matcher metrics = primary.awaitLine("metrics on (http://127\\.0\\.0\\.1:\\d+/metrics)", STARTUP);
        primary.awaitLine("primary ready", STARTUP);
        secondary.awaitLine("primary linked", STARTUP);

        final JsonNode idle = awaitCounters(primaryControl, "a started primary",
            c -> c.path("peer-link").asText().equals("up"));
        assertEquals("running", idle.path("state").asText(), idle.toString());
        assertEquals(0, idle.path("forwarded-bytes").asLong(), idle.toString());
        assertEquals(0, idle.path("errors").asLong(), idle.toString());

        // 1 MiB from the guest: forwarded whole, 16 clusters dirty, its originals copied into 256 clusters of H.
        qemuIo(unixUri(pvm), "write -P 0x22 1M 1M");
        final JsonNode written = awaitCounters(primaryControl, "the guest's 1 MiB forwarded",
            c -> c.path("forwarded-bytes").asLong() == MIB && c.path("dirty-clusters").asLong() == MIB / CLUSTER);
        assertEquals(MIB, written.path("nbd-write-bytes:pvm").asLong(), written.toString());
        assertEquals(0, written.path("unacknowledged-bytes").asLong(), written.toString());
        assertEquals(0, written.path("forward-timeouts").asLong(), written.toString());
        assertTrue(written.path("forwarded-ops").asLong() >= 1, written.toString());
        qemuIo(unixUri(svm), "write -P 0x33 4M 128k");
        final JsonNode copied = awaitCounters(secondaryControl, "COW copies into H and the SVM's writes into A",
            c -> c.path("hidden-clusters").asLong() == MIB / HIDDEN_CLUSTER &&
                c.path("active-clusters").asLong() == 2);
        assertEquals(MIB / HIDDEN_CLUSTER, copied.path("cow-copies").asLong(), copied.toString());
        assertEquals(MIB / HIDDEN_CLUSTER, copied.path("cow-copies-offloaded").asLong(),
            "S and H on one file system: the kernel copies the originals, " + copied);
        assertEquals(MIB, copied.path("nbd-write-bytes:colo").asLong(), copied.toString());
        assertEquals(128 * 1024, copied.path("nbd-write-bytes:svm").asLong(), copied.toString());

        understudyOk("checkpoint", "--control", primaryControl.toString());
        final JsonNode checkpointed = awaitCounters(primaryControl, "the checkpoint",
            c -> c.path("epoch").asLong() == 1 && c.path("dirty-clusters").asLong() == 0);
        assertEquals(1, checkpointed.path("checkpoints").asLong(), checkpointed.toString());
        final long lastMicros = checkpointed.path("checkpoint-last-us").asLong();
        assertTrue(lastMicros > 0, checkpointed.toString());
        assertEquals(lastMicros, checkpointed.path("checkpoint-p50-us").asLong(), "one checkpoint is its own median");
        assertEquals(lastMicros, checkpointed.path("checkpoint-p99-us").asLong(), checkpointed.toString());
        final JsonNode emptied = awaitCounters(secondaryControl, "the secondary's checkpoint",
            c -> c.path("epoch").asLong() == 1 && c.path("hidden-clusters").asLong() == 0);
        assertEquals(0, emptied.path("active-clusters").asLong(), emptied.toString());
        assertEquals(1, emptied.path("checkpoints").asLong(), emptied.toString());

        final String scraped = Commands.exec("curl", "-sf", metrics.group(1)).output();
        assertTrue(scraped.contains("\nunderstudy_forwarded_bytes " + MIB + "\n"), scraped);
        assertTrue(scraped.contains("\nunderstudy_state{state=\"running\"} 1\n"), scraped);

        assertWatchRepeats(primaryControl);

        // status asks the daemon and shows the same figures.
        final JsonNode status = Commands.statusCli(primaryControl);
        assertEquals(MIB, status.path("counters").path("forwarded-bytes").asLong(), status.toString());
        final String text = understudyOk("status", "--control", primaryControl.toString());
        assertTrue(text.lines().anyMatch(l -> l.matches("\\s+forwarded-bytes\\s+" + MIB)), text);

        // A stopped secondary cannot answer its control socket, but its counters file still can; meanwhile
        // the primary hears no heartbeats, degrades the pair and counts the lost link as an error.
        secondary.signal("STOP");
        final JsonNode stopped = awaitStat(secondaryControl, "the stopped secondary's stale heartbeat",
            s -> s.path("stale").asBoolean());
        assertTrue(stopped.path("alive").asBoolean(), stopped.toString());
        assertTrue(stopped.path("heartbeat-age-ms").asLong() > StatCommand.STALE_AFTER_MS, stopped.toString());
        assertEquals(1, stopped.path("counters").path("epoch").asLong(), stopped.toString());
        final String stoppedText = understudyOk("stat", "--control", secondaryControl.toString());
        assertTrue(stoppedText.contains("has not updated its counters for"), stoppedText);
        final JsonNode degraded = awaitCounters(primaryControl, "the primary losing its peer",
            c -> c.path("state").asText().equals("degraded") && c.path("peer-link").asText().equals("lost"));
        assertTrue(degraded.path("errors").asLong() >= 2, "lost link and latched error: " + degraded);

        primary.kill();
        secondary.kill();
        final JsonNode dead = stat(primaryControl);
        assertFalse(dead.path("alive").asBoolean(), dead.toString());
        assertEquals("degraded", dead.path("counters").path("state").asText(), dead.toString());
        assertEquals(MIB, dead.path("counters").path("forwarded-bytes").asLong(), dead.toString());
        assertTrue(understudyOk("stat", "--control", primaryControl.toString()).contains("is not running"));

        final JsonNode errors = JSON.readTree(understudyOk("errors", "--json", "--control",
            primaryControl.toString()));
        assertEquals("primary", errors.path("role").asText(), errors.toString());
        assertTrue(contains(errors, "control link to /127.0.0.1:" + ready.group(2) + " lost"), errors.toString());
        assertTrue(contains(errors, "replication error latched: ETIMEDOUT: control link"), errors.toString());
        final String errorsText = understudyOk("errors", "--control", primaryControl.toString());
        assertTrue(errorsText.contains("1 observation(s), first "), errorsText);
        assertEquals(0, JSON.readTree(understudyOk("errors", "--json", "--control", secondaryControl.toString()))
            .path("distinct").asInt(), "the secondary saw no error before it was stopped");
    }

    @Test
    void statAndErrorsNameWhyTheyRefuseAFile() throws Exception
    {
        final Commands.Result missing = understudy("stat", "--control", dir.resolve("none.ctl").toString());
        assertEquals(1, missing.exitCode(), missing.output());
        assertTrue(missing.output().contains("none.ctl.counters: no counters file here") &&
            missing.output().contains("[missing]"), missing.output());
        final Path foreign = dir.resolve("foreign");
        fill(foreign, 4096, 0x5a);
        final Commands.Result notOurs = understudy("errors", "--file", foreign.toString());
        assertEquals(1, notOurs.exitCode(), notOurs.output());
        assertTrue(notOurs.output().contains("not an understudy error log") &&
            notOurs.output().contains("[not-ours]"), notOurs.output());
    }

    /** {@code stat --watch --json} prints one object per interval until it is stopped. */
    private static void assertWatchRepeats(final Path control) throws IOException
    {
        final Process watch = new ProcessBuilder(Path.of(System.getenv().getOrDefault("UNDERSTUDY_ROOT", ".."))
            .toAbsolutePath().resolve("bin/understudy").toString(), "stat", "--watch", "--interval", "200", "--json",
            "--control", control.toString()).redirectErrorStream(true).start();
        try (BufferedReader lines = new BufferedReader(new InputStreamReader(watch.getInputStream(),
            StandardCharsets.UTF_8)))
        {
            for (int i = 0; i < 2; i++)
            {
                final String line = lines.readLine();
                assertEquals(1, JSON.readTree(line).path("counters").path("epoch").asLong(), line);
            }
        }
        finally
        {
            watch.destroyForcibly();
        }
    }

    private DaemonProcess start(final String... args) throws IOException
    {
        final DaemonProcess daemon = new DaemonProcess(args);
        daemons.add(daemon);
        return daemon;
    }

    private static boolean contains(final JsonNode errors, final String text)
    {
        for (final JsonNode error : errors.path("errors"))
        {
            if (error.path("error").asText().contains(text))
            {
                return true;
            }
        }
        return false;
    }

    private static JsonNode stat(final Path control) throws IOException, InterruptedException
    {
        return JSON.readTree(understudyOk("stat", "--json", "--control", control.toString()));
    }

    /** Polls {@code understudy stat --json} (figures are sampled every 100 ms) until {@code done} holds. */
    private static JsonNode awaitStat(final Path control, final String what, final Predicate<JsonNode> done)
        throws IOException, InterruptedException
    {
        final long deadline = System.nanoTime() + SETTLE.toNanos();
        JsonNode last;
        do
        {
            last = stat(control);
            if (done.test(last))
            {
                return last;
            }
            Thread.sleep(100);
        }
        while (System.nanoTime() - deadline < 0);
        throw new AssertionError("stat never showed " + what + " within " + SETTLE + "; last: " + last);
    }

    private static JsonNode awaitCounters(final Path control, final String what, final Predicate<JsonNode> done)
        throws IOException, InterruptedException
    {
        return awaitStat(control, what, s -> done.test(s.path("counters"))).path("counters");
    }
}
