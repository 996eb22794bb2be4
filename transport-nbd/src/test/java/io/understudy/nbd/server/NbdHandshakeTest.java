package io.understudy.nbd.server;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.List;

import static io.understudy.nbd.protocol.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Option haggling, byte for byte, and every bad-input row of the handshake (nbd-spec.md section 10). */
@Timeout(30)
class NbdHandshakeTest
{
    private static final long SIZE = 4 << 20;

    @TempDir
    Path dir;
    private ServerFixture fixture;

    @BeforeEach
    void setUp() throws IOException
    {
        fixture = new ServerFixture(dir, SIZE, 1, false);
    }

    @AfterEach
    void tearDown()
    {
        fixture.close();
    }

    private int expectedFlags(final boolean structured)
    {
        return TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES
            | TFLAG_CAN_MULTI_CONN | TFLAG_SEND_CACHE | (fixture.device.canFastZero() ? TFLAG_SEND_FAST_ZERO : 0)
            | (structured ? TFLAG_SEND_DF : 0);
    }

    @Test
    void goRepliesExportInfoBlockSizeAndAck() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE | RawClient.CLIENT_NO_ZEROES);
            client.option(OPT_GO, RawClient.infoData("disk", INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE, 999));
            final List<RawClient.OptionReply> replies = client.readOptionReplies();
            assertEquals(5, replies.size());
            assertArrayEquals(ByteBuffer.allocate(12).putShort((short)0).putLong(SIZE)
                .putShort((short)expectedFlags(false)).array(), replies.get(0).data(), "NBD_INFO_EXPORT");
            assertArrayEquals(bytes(ByteBuffer.allocate(6).putShort((short)INFO_NAME).put(utf8("disk"))),
                replies.get(1).data(), "NBD_INFO_NAME");
            assertArrayEquals(bytes(ByteBuffer.allocate(11).putShort((short)INFO_DESCRIPTION).put(utf8("test disk"))),
                replies.get(2).data(), "NBD_INFO_DESCRIPTION");
            assertArrayEquals(ByteBuffer.allocate(14).putShort((short)INFO_BLOCK_SIZE).putInt(1).putInt(4096)
                .putInt(32 << 20).array(), replies.get(3).data(), "NBD_INFO_BLOCK_SIZE");
            for (final RawClient.OptionReply reply : replies)
            {
                assertEquals(OPT_GO, reply.option());
            }
            assertEquals(REP_ACK, replies.get(4).type());
            assertEquals(0, replies.get(4).data().length);
            // Transmission starts at once, no padding: a FLUSH gets its reply.
            client.request(0, CMD_FLUSH, 77, 0, 0);
            assertEquals(0, client.readSimpleReply(77));
        }
    }

    @Test
    void emptyNameIsTheDefaultExportAndUnknownNamesAreRefused() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.option(OPT_INFO, RawClient.infoData("nope"));
            final List<RawClient.OptionReply> unknown = client.readOptionReplies();
            assertEquals(1, unknown.size(), "no INFO before ERR_UNKNOWN");
            assertEquals(REP_ERR_UNKNOWN, unknown.get(0).type());
            client.option(OPT_INFO, RawClient.infoData(""));
            final List<RawClient.OptionReply> info = client.readOptionReplies();
            assertEquals(REP_INFO, info.get(0).type());
            assertEquals(REP_ACK, info.getLast().type());
            client.structuredReplies();
            client.option(OPT_GO, RawClient.infoData(""));
            final List<RawClient.OptionReply> go = client.readOptionReplies();
            assertArrayEquals(ByteBuffer.allocate(12).putShort((short)0).putLong(SIZE)
                .putShort((short)expectedFlags(true)).array(), go.get(0).data(), "SEND_DF only after SR");
        }
    }

    @Test
    void exportNameRepliesWithAndWithoutZeroes() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.option(OPT_EXPORT_NAME, utf8("disk"));
            final ByteBuffer expected = ByteBuffer.allocate(134).putLong(SIZE).putShort((short)expectedFlags(false));
            assertArrayEquals(expected.array(), client.readBytes(134));
            client.request(0, CMD_FLUSH, 1, 0, 0);
            assertEquals(0, client.readSimpleReply(1));
        }
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE | RawClient.CLIENT_NO_ZEROES);
            client.option(OPT_EXPORT_NAME, new byte[0]);
            assertArrayEquals(ByteBuffer.allocate(10).putLong(SIZE).putShort((short)expectedFlags(false)).array(),
                client.readBytes(10));
            client.request(0, CMD_FLUSH, 2, 0, 0);
            assertEquals(0, client.readSimpleReply(2));
        }
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.option(OPT_EXPORT_NAME, utf8("other"));
            assertTrue(client.closedByServer(), "unknown export via EXPORT_NAME: the server can only close");
        }
    }

    @Test
    void hs_client_flags_unknown() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(0x4 | RawClient.CLIENT_FIXED_NEWSTYLE);
            assertTrue(client.closedByServer());
        }
        assertServes();
    }

    @Test
    void opt_unknown_unsup() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            for (final int length : new int[] {0, 1, 5000, 65536})
            {
                client.option(0x7777, new byte[length]);
                final RawClient.OptionReply reply = client.readOptionReply();
                assertEquals(0x7777, reply.option());
                assertEquals(REP_ERR_UNSUP, reply.type());
            }
            client.option(0x7777, new byte[1 << 20]);
            assertEquals(REP_ERR_UNSUP, client.readOptionReply().type(), "long unknown options are consumed too");
            client.option(OPT_SET_META_CONTEXT, new byte[100_000]);
            assertEquals(REP_ERR_TOO_BIG, client.readOptionReply().type());
            client.option(OPT_EXTENDED_HEADERS, new byte[0]);
            assertEquals(REP_ERR_UNSUP, client.readOptionReply().type());
            client.go("disk");
        }
    }

    @Test
    void opt_info_malformed() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            final byte[][] malformed = {
                new byte[0],
                new byte[5],
                bytes(ByteBuffer.allocate(10).putInt(100).put(utf8("disk")).putShort((short)0)),
                bytes(ByteBuffer.allocate(10).putInt(4).put(utf8("disk")).putShort((short)3)),
                bytes(ByteBuffer.allocate(13).putInt(4).put(utf8("disk")).putShort((short)1).putShort((short)1)
                    .put((byte)0)),
            };
            for (final byte[] data : malformed)
            {
                for (final int option : new int[] {OPT_INFO, OPT_GO})
                {
                    client.option(option, data);
                    final List<RawClient.OptionReply> replies = client.readOptionReplies();
                    assertEquals(1, replies.size());
                    assertEquals(REP_ERR_INVALID, replies.get(0).type(), "malformed INFO/GO");
                    assertEquals(option, replies.get(0).option());
                }
            }
            client.go("disk");
        }
    }

    @Test
    void opt_meta_context_malformed() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.option(OPT_SET_META_CONTEXT, RawClient.metaContextData("disk", "base:allocation"));
            assertEquals(REP_ERR_INVALID, client.readOptionReply().type(), "SET before STRUCTURED_REPLY");
            client.structuredReplies();
            final byte[] good = RawClient.metaContextData("disk", "base:allocation");
            final byte[] truncatedQuery = java.util.Arrays.copyOf(good, good.length - 3);
            final byte[] queryTooLong = good.clone();
            ByteBuffer.wrap(queryTooLong).putInt(12, 1000);
            final byte[] nameTooLong = good.clone();
            ByteBuffer.wrap(nameTooLong).putInt(0, 5000);
            final byte[] extraQueries = good.clone();
            ByteBuffer.wrap(extraQueries).putInt(8, 2);
            final byte[] trailing = java.util.Arrays.copyOf(good, good.length + 2);
            for (final byte[] data : new byte[][] {new byte[3], truncatedQuery, queryTooLong, nameTooLong,
                extraQueries, trailing})
            {
                for (final int option : new int[] {OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT})
                {
                    client.option(option, data);
                    final List<RawClient.OptionReply> replies = client.readOptionReplies();
                    assertEquals(1, replies.size());
                    assertEquals(REP_ERR_INVALID, replies.get(0).type());
                }
            }
            // A failed SET cleared the selection: BLOCK_STATUS must be refused.
            client.go("disk");
            client.request(0, CMD_BLOCK_STATUS, 5, 0, 4096);
            final RawClient.Reply reply = client.readReply();
            assertEquals(NBD_EINVAL, reply.error());
        }
    }

    @Test
    void metaContextQueries() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.structuredReplies();
            final byte[] expectedList = bytes(ByteBuffer.allocate(19).putInt(0).put(utf8("base:allocation")));
            for (final String[] queries : new String[][] {{}, {"base:"}, {"base:allocation"},
                {"qemu:dirty-bitmap:x", "base:allocation", "base:nonsense"}})
            {
                client.option(OPT_LIST_META_CONTEXT, RawClient.metaContextData("disk", queries));
                final List<RawClient.OptionReply> replies = client.readOptionReplies();
                assertEquals(2, replies.size(), String.join(",", queries));
                assertEquals(REP_META_CONTEXT, replies.get(0).type());
                assertArrayEquals(expectedList, replies.get(0).data());
            }
            client.option(OPT_LIST_META_CONTEXT, RawClient.metaContextData("disk", "other:thing", "base:x"));
            final List<RawClient.OptionReply> none = client.readOptionReplies();
            assertEquals(1, none.size(), "unknown namespace and leaf are ignored: lone ACK");
            assertEquals(REP_ACK, none.get(0).type());
            client.option(OPT_SET_META_CONTEXT, RawClient.metaContextData("disk"));
            assertEquals(REP_ACK, client.readOptionReplies().getFirst().type(), "zero queries select nothing");
            client.option(OPT_SET_META_CONTEXT, RawClient.metaContextData("nope", "base:allocation"));
            assertEquals(REP_ERR_UNKNOWN, client.readOptionReplies().getFirst().type());
            client.option(OPT_SET_META_CONTEXT, RawClient.metaContextData("disk", "base:allocation"));
            final List<RawClient.OptionReply> set = client.readOptionReplies();
            assertEquals(2, set.size());
            assertArrayEquals(bytes(ByteBuffer.allocate(19).putInt(1).put(utf8("base:allocation"))),
                set.get(0).data());
            client.go("disk");
            client.request(0, CMD_BLOCK_STATUS, 9, 0, 8192);
            final RawClient.Reply reply = client.readReply();
            assertArrayEquals(ByteBuffer.allocate(12).putInt(1).putInt(8192).putInt(STATE_HOLE | STATE_ZERO).array(),
                reply.payload());
        }
    }

    @Test
    void opt_list() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.option(OPT_LIST, new byte[0]);
            final List<RawClient.OptionReply> replies = client.readOptionReplies();
            assertEquals(2, replies.size());
            assertEquals(REP_SERVER, replies.get(0).type());
            assertArrayEquals(bytes(ByteBuffer.allocate(17).putInt(4).put(utf8("disk")).put(utf8("test disk"))),
                replies.get(0).data());
            assertEquals(REP_ACK, replies.get(1).type());
            client.option(OPT_LIST, new byte[] {1});
            assertEquals(REP_ERR_INVALID, client.readOptionReply().type());
            client.option(OPT_STARTTLS, new byte[0]);
            final RawClient.OptionReply tls = client.readOptionReply();
            assertEquals(REP_ERR_POLICY, tls.type());
            client.option(OPT_STARTTLS, new byte[] {1});
            assertEquals(REP_ERR_INVALID, client.readOptionReply().type());
            client.option(OPT_ABORT, new byte[0]);
            final RawClient.OptionReply abort = client.readOptionReply();
            assertEquals(OPT_ABORT, abort.option());
            assertEquals(REP_ACK, abort.type());
            assertTrue(client.closedByServer());
        }
    }

    @Test
    void opt_structured_reply() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.option(OPT_STRUCTURED_REPLY, new byte[] {0});
            final RawClient.OptionReply invalid = client.readOptionReply();
            assertEquals(REP_ERR_INVALID, invalid.type());
            assertTrue(invalid.text().contains("no data"), invalid.text());
            client.structuredReplies();
            client.go("disk");
            assertEquals(TFLAG_SEND_DF, client.transmissionFlags & TFLAG_SEND_DF);
        }
    }

    @Test
    void hs_garbage_clients() throws Exception
    {
        final byte[][] garbage = {
            utf8("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            new byte[] {0, 0, 0, 1, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 0, 0, 0, 7, 0, 0, 0, 0},
            new byte[] {0, 0},
        };
        for (final byte[] bytes : garbage)
        {
            try (RawClient client = fixture.connect())
            {
                client.readBytes(18);
                client.send(bytes);
                client.channel.shutdownOutput();
                assertTrue(client.closedByServer());
            }
        }
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.send(ByteBuffer.allocate(16).putLong(IHAVEOPT).putInt(OPT_GO).putInt(20).flip());
            client.send(new byte[7]);
            client.channel.shutdownOutput();
            assertTrue(client.closedByServer(), "truncated option data");
        }
        try (RawClient client = fixture.connect())
        {
            client.readBytes(5);
        }
        assertServes();
        final long violations = fixture.server.counters().protocolViolations();
        assertTrue(violations >= 4, "violations counted: " + violations);
    }

    @Test
    void opt_huge_option_length() throws IOException
    {
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.send(ByteBuffer.allocate(16).putLong(IHAVEOPT).putInt(0x1234).putInt(0xFFFF_FFF0).flip());
            assertTrue(client.closedByServer(), "a 4 GiB option is treated as denial of service");
        }
        assertServes();
    }

    @Test
    void silentClientsAreDisconnectedAtTheHandshakeDeadline(@TempDir final Path other) throws Exception
    {
        try (ServerFixture strict = new ServerFixture(other, SIZE, 1, false,
            context -> context.handshakeTimeoutNanos(TimeUnit.MILLISECONDS.toNanos(1000)).maxConnections(2)))
        {
            final long start = System.nanoTime();
            try (RawClient silent = strict.connect(); RawClient halfway = strict.connect())
            {
                silent.readBytes(18);
                halfway.handshake(RawClient.CLIENT_FIXED_NEWSTYLE); // then never sends an option
                assertTrue(silent.closedByServer(), "a client that says nothing is dropped");
                assertTrue(halfway.closedByServer(), "a client stuck in option haggling is dropped");
            }
            final long waitedMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertTrue(waitedMillis >= 950 && waitedMillis < 6_000, "dropped after " + waitedMillis + " ms");
            // Both places are free again, and a client that completes its handshake in time keeps being served
            // after the deadline has passed. (A deadline of a second leaves a loaded machine time for the
            // handshake.)
            try (RawClient client = strict.transmission(false))
            {
                Thread.sleep(1200);
                client.request(0, CMD_WRITE, 1, 0, 4, new byte[] {9, 8, 7, 6});
                assertEquals(0, client.readSimpleReply(1));
            }
            assertTrue(strict.server.counters().protocolViolations() >= 2);
        }
    }

    private void assertServes() throws IOException
    {
        try (RawClient client = fixture.transmission(true))
        {
            client.request(0, CMD_WRITE, 1, 4096, 4, new byte[] {1, 2, 3, 4});
            assertEquals(0, client.readSimpleReply(1));
            client.request(0, CMD_READ, 2, 4096, 4);
            final RawClient.Reply reply = client.readReply();
            assertArrayEquals(ByteBuffer.allocate(12).putLong(4096).put(new byte[] {1, 2, 3, 4}).array(),
                reply.payload());
        }
    }

    private static byte[] utf8(final String text)
    {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] bytes(final ByteBuffer buffer)
    {
        return buffer.array();
    }
}
