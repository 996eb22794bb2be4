package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The control socket's QMP-like protocol over a real unix socket: return, error classes, bad input, mode 0600. */
class ControlServerTest
{
    @TempDir
    Path dir;

    private static ControlServer.Handler echo()
    {
        return (command, arguments) ->
        {
            if ("fail".equals(command))
            {
                throw new ControlException(ControlException.GENERIC, "it failed on purpose");
            }
            return ControlServer.JSON.createObjectNode().put("command", command).set("arguments", arguments);
        };
    }

    @Test
    void answersReturnAndErrorAndIsPrivateToItsUser() throws Exception
    {
        final Path path = dir.resolve("c.ctl");
        try (ControlServer server = new ControlServer(path, echo(), new ControlEvents()))
        {
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(path)));
            final JsonNode reply = ControlClient.execute(path, "status",
                ControlServer.JSON.createObjectNode().put("x", 7));
            assertEquals("status", reply.path("command").asText());
            assertEquals(7, reply.path("arguments").path("x").asInt());
            final UserException failed = assertThrows(UserException.class,
                () -> ControlClient.execute(path, "fail", ControlServer.JSON.createObjectNode()));
            assertEquals("fail failed: it failed on purpose (GenericError)", failed.getMessage());
        }
        assertFalse(Files.exists(path));
    }

    @Test
    void malformedRequestsGetErrorsAndTheConnectionStaysUsable() throws Exception
    {
        final Path path = dir.resolve("c.ctl");
        try (ControlServer server = new ControlServer(path, echo(), new ControlEvents());
            SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX))
        {
            channel.connect(UnixDomainSocketAddress.of(path));
            final OutputStream out = Channels.newOutputStream(channel);
            final BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel),
                StandardCharsets.UTF_8));
            out.write("{not json\n{\"exec\": 1}\n{\"execute\": \"a\", \"arguments\": 3}\n{\"execute\": \"ok\"}\n"
                .getBytes(StandardCharsets.UTF_8));
            out.flush();
            assertTrue(in.readLine().startsWith("{\"error\":{\"class\":\"GenericError\",\"desc\":\"not JSON"));
            assertTrue(in.readLine().contains("expected {\\\"execute\\\""));
            assertEquals("{\"error\":{\"class\":\"InvalidParameter\",\"desc\":\"arguments must be an object\"}}",
                in.readLine());
            assertEquals("{\"return\":{\"command\":\"ok\",\"arguments\":{}}}", in.readLine());
        }
    }
}
