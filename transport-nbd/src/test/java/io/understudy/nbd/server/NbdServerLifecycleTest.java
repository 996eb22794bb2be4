package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

import static io.understudy.nbd.protocol.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Context validation, TCP listeners and the server's lifecycle. */
@Timeout(60)
class NbdServerLifecycleTest
{
    @TempDir
    Path dir;

    @Test
    void contextValidatesOptions() throws IOException
    {
        assertThrows(IllegalArgumentException.class, () -> new NbdServer.Context().conclude(), "device required");
        final Path file = dir.resolve("d.img");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(1 << 20);
        }
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0);
            BlockDevice device = engine.open(file, FileOptions.readOnlyFile()))
        {
            assertThrows(IllegalArgumentException.class,
                () -> new NbdServer.Context().device(device).maxInFlight(65).conclude());
            assertThrows(IllegalArgumentException.class,
                () -> new NbdServer.Context().device(device).maxInFlight(0).conclude());
            assertThrows(IllegalArgumentException.class,
                () -> new NbdServer.Context().device(device).maxConnectionBytes(1 << 20).conclude());
            assertThrows(IllegalArgumentException.class,
                () -> new NbdServer.Context().device(device).exportName("a\0b").conclude());
            assertThrows(IllegalArgumentException.class,
                () -> new NbdServer.Context().device(device).exportName("x".repeat(4097)).conclude());
            final NbdServer.Context context = new NbdServer.Context().device(device).conclude();
            assertTrue(context.readOnly(), "a read-only device forces a read-only export");
            assertEquals(1, context.minimumBlockSize());
            assertEquals("", context.exportName());
            final NbdServer server = new NbdServer(context);
            assertThrows(IllegalStateException.class, server::start, "no listener");
            server.bindUnix(dir.resolve("s.sock"));
            assertThrows(IOException.class, () -> server.bindUnix(dir.resolve("s.sock")), "path exists");
            server.close();
        }
    }

    @Test
    void connectionsBeyondTheLimitAreRefused() throws IOException
    {
        try (ServerFixture fixture = new ServerFixture(dir, 1 << 20, 0, false, context -> context.maxConnections(2));
            RawClient first = fixture.transmission(false);
            RawClient second = fixture.connect();
            RawClient third = fixture.connect())
        {
            second.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            assertTrue(third.closedByServer(), "third connection refused");
            assertEquals(1, fixture.server.counters().connectionsRefused());
            first.request(0, CMD_FLUSH, 1, 0, 0);
            assertEquals(0, first.readSimpleReply(1), "the others are served");
        }
    }

    @Test
    void tcpPortZeroReportsTheBoundPortOnLoopback() throws Exception
    {
        final Path file = dir.resolve("d.img");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(8 << 20);
        }
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0);
            BlockDevice device = engine.open(file, FileOptions.readWrite()))
        {
            final NbdServer server = new NbdServer(new NbdServer.Context().exportName("tcp").device(device));
            server.bindTcp(0);
            assertEquals(-1, new NbdServer(new NbdServer.Context().device(device)).tcpPort());
            server.start();
            final int port = server.tcpPort();
            assertTrue(port > 0, "bound port " + port);
            try (SocketChannel channel = SocketChannel.open(new InetSocketAddress("127.0.0.1", port)))
            {
                final ByteBuffer greeting = ByteBuffer.allocate(18);
                while (greeting.hasRemaining() && channel.read(greeting) >= 0)
                {
                    // Read the whole greeting.
                }
                assertEquals(NBDMAGIC, greeting.getLong(0));
            }
            Tool.require("qemu-io", "qemu-utils");
            final String output = Tool.ok(dir, 30, "qemu-io", "-f", "raw", "-c", "write -P 0x3c 0 64k",
                "-c", "read -P 0x3c 0 64k", "nbd://127.0.0.1:" + port + "/tcp");
            assertFalse(output.contains("fail"), output);
            assertEquals(2, server.counters().connectionsAccepted(), "greeting client + qemu-io");
            server.close();
            final byte[] expected = new byte[65536];
            java.util.Arrays.fill(expected, (byte)0x3c);
            assertArrayEquals(expected, java.util.Arrays.copyOf(Files.readAllBytes(file), 65536));
            assertThrows(IOException.class, () -> SocketChannel.open(new InetSocketAddress("127.0.0.1", port)),
                "listener closed");
        }
    }
}
