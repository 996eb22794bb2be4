package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.understudy.cli.counters.DaemonRole;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The daemon-side wiring in-process: errors counted and logged once each, the duty cycle survives a throw. */
class DaemonCountersTest
{
    @TempDir
    Path dir;

    @Test
    void errorsAreCountedDeduplicatedAndADutyCycleThatThrowsGoesOn()
    {
        final Path counters = dir.resolve("d.counters");
        final Path errors = dir.resolve("d.errors");
        final Thread.UncaughtExceptionHandler before = Thread.getDefaultUncaughtExceptionHandler();
        try (DaemonCounters daemon = DaemonCounters.open(counters, errors, DaemonRole.SERVE, false))
        {
            final IOException reset = new IOException("connection reset by peer");
            daemon.errorHandler().onError(reset);
            daemon.errorHandler().onError(reset);
            daemon.errorHandler().onError(new ObservedFailure("control link to 10.0.0.2:10810 lost: silence"));
            final int[] calls = new int[1];
            final int work = daemon.dutyCycle(() ->
            {
                calls[0]++;
                throw new IllegalStateException("duty cycle bug");
            }).getAsInt();
            assertEquals(1, calls[0]);
            assertEquals(0, work);

            final JsonNode stat = StatCommand.read(counters);
            assertEquals(4, stat.path("counters").path("errors").asLong(), stat.toString());
            assertEquals("serve", stat.path("role").asText());
            assertTrue(stat.path("alive").asBoolean());
            assertFalse(stat.path("stale").asBoolean(), stat.toString());
        }
        assertSame(before, Thread.getDefaultUncaughtExceptionHandler(), "the daemon's handler is removed at close");
        final JsonNode log = ErrorsCommand.read(errors);
        assertEquals(3, log.path("distinct").asInt(), log.toString());
        assertEquals(2, log.path("errors").get(0).path("count").asInt());
        assertTrue(log.path("errors").get(0).path("error").asText().startsWith(
            "java.io.IOException: connection reset by peer"));
        assertTrue(log.path("errors").get(1).path("error").asText().contains("lost: silence"));
        assertTrue(log.path("errors").get(2).path("error").asText().contains("duty cycle bug"));
    }
}
