package io.understudy.cli;

import io.understudy.cli.counters.CounterType;
import io.understudy.cli.counters.CountersFile;
import io.understudy.cli.counters.DaemonRole;
import io.understudy.engine.replication.ReplicationState;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MetricsEndpointTest
{
    @TempDir
    Path dir;

    @Test
    void servesEveryCounterAsPrometheusTextOnTheLoopback() throws Exception
    {
        try (CountersFile file = CountersFile.create(dir.resolve("m.counters"), DaemonRole.PRIMARY, false, 0))
        {
            file.manager().newCounter(CounterType.STATE.label(), CounterType.STATE.typeId())
                .setRelease(ReplicationState.DEGRADED.ordinal());
            file.manager().newCounter(CounterType.FORWARDED_BYTES.label(), CounterType.FORWARDED_BYTES.typeId())
                .setRelease(1048576);
            file.manager().newCounter(CounterType.NBD_IN_FLIGHT.label("pvm"), CounterType.NBD_IN_FLIGHT.typeId())
                .setRelease(3);
            // A sidecar of several disks: each disk's counters carry its name.
            file.manager().newCounter(CounterType.forDisk(CounterType.STATE.label(), "data"),
                CounterType.STATE.typeId()).setRelease(ReplicationState.RUNNING.ordinal());
            file.manager().newCounter(CounterType.forDisk(CounterType.EPOCH.label(), "data"),
                CounterType.EPOCH.typeId()).setRelease(7);
            file.manager().newCounter(CounterType.forDisk(CounterType.NBD_IN_FLIGHT.label("pvm"), "data"),
                CounterType.NBD_IN_FLIGHT.typeId()).setRelease(2);
            try (MetricsEndpoint endpoint = MetricsEndpoint.start(new ListenAddress("127.0.0.1", 0), file.reader(),
                DaemonRole.PRIMARY);
                HttpClient client = HttpClient.newHttpClient())
            {
                final URI uri = URI.create("http://127.0.0.1:" + endpoint.address().getPort() + "/metrics");
                final HttpResponse<String> response = client.send(HttpRequest.newBuilder(uri).build(),
                    HttpResponse.BodyHandlers.ofString());
                assertEquals(200, response.statusCode());
                assertTrue(response.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"));
                final String body = response.body();
                assertTrue(body.contains("\nunderstudy_state{state=\"degraded\"} 1\n"), body);
                assertTrue(body.contains("\nunderstudy_forwarded_bytes 1048576\n"), body);
                assertTrue(body.contains("\nunderstudy_nbd_in_flight{export=\"pvm\"} 3\n"), body);
                assertTrue(body.contains("\nunderstudy_state{state=\"running\",disk=\"data\"} 1\n"), body);
                assertTrue(body.contains("\nunderstudy_epoch{disk=\"data\"} 7\n"), body);
                assertTrue(body.contains("\nunderstudy_nbd_in_flight{export=\"pvm\",disk=\"data\"} 2\n"), body);
                final HttpResponse<String> other = client.send(HttpRequest.newBuilder(uri.resolve("/other")).build(),
                    HttpResponse.BodyHandlers.ofString());
                assertEquals(404, other.statusCode());
            }
        }
    }

    @Test
    void refusesANonLoopbackAddress()
    {
        try (CountersFile file = CountersFile.create(dir.resolve("n.counters"), DaemonRole.SERVE, false, 0))
        {
            final UserException refused = assertThrows(UserException.class,
                () -> MetricsEndpoint.start(new ListenAddress("0.0.0.0", 0), file.reader(), DaemonRole.SERVE));
            assertTrue(refused.getMessage().contains("must be a loopback address"), refused.getMessage());
        }
    }
}
