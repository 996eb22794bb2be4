package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.ForwardingBlockDevice;
import io.understudy.engine.device.IoCompletion;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static io.understudy.nbd.protocol.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Commands, replies and every bad-input row of the transmission phase (nbd-spec.md section 10). */
@Timeout(60)
class NbdTransmissionTest
{
    private static final long SIZE = 64 << 20;

    @TempDir
    Path dir;
    private ServerFixture fixture;

    @AfterEach
    void tearDown()
    {
        if (fixture != null)
        {
            fixture.close();
        }
    }

    private ServerFixture start(final int workers, final boolean readOnly) throws IOException
    {
        fixture = new ServerFixture(dir, SIZE, workers, readOnly);
        return fixture;
    }

    private static void expectError(final RawClient client, final long cookie, final int error) throws IOException
    {
        final RawClient.Reply reply = client.readReply();
        assertEquals(cookie, reply.cookie(), "cookie");
        assertEquals(error, reply.error(), "error");
        if (reply.structured())
        {
            assertEquals(REPLY_TYPE_ERROR, reply.type());
            assertTrue(reply.done());
            final ByteBuffer payload = ByteBuffer.wrap(reply.payload());
            payload.getInt();
            final int messageLength = payload.getShort();
            assertTrue(messageLength > 0 && messageLength == payload.remaining(), "error message length");
        }
    }

    private static void expectOk(final RawClient client, final long cookie) throws IOException
    {
        assertEquals(0, client.readSimpleReply(cookie), "simple success reply for cookie " + cookie);
    }

    /** Reads a structured READ reply and reassembles it, checking chunk rules. */
    private static byte[] readStructured(final RawClient client, final long cookie, final long offset, final int length)
        throws IOException
    {
        final byte[] data = new byte[length];
        final boolean[] covered = new boolean[length];
        while (true)
        {
            final RawClient.Reply reply = client.readReply();
            assertEquals(cookie, reply.cookie());
            assertEquals(0, reply.error(), "read error");
            final ByteBuffer payload = ByteBuffer.wrap(reply.payload());
            if (reply.type() == REPLY_TYPE_OFFSET_DATA || reply.type() == REPLY_TYPE_OFFSET_HOLE)
            {
                final int at = (int)(payload.getLong() - offset);
                final int size = reply.type() == REPLY_TYPE_OFFSET_DATA ? payload.remaining() : payload.getInt();
                assertTrue(size > 0 && at >= 0 && at + size <= length, "chunk inside the request");
                for (int i = at; i < at + size; i++)
                {
                    assertFalse(covered[i], "chunks overlap");
                    covered[i] = true;
                }
                if (reply.type() == REPLY_TYPE_OFFSET_DATA)
                {
                    payload.get(data, at, size);
                }
            }
            else
            {
                assertEquals(REPLY_TYPE_NONE, reply.type());
            }
            if (reply.done())
            {
                break;
            }
        }
        for (final boolean c : covered)
        {
            assertTrue(c, "chunks cover the request");
        }
        return data;
    }

    /** Slots are released just after their reply is written: a client can see the reply a moment earlier. */
    private void awaitNoneInFlight() throws InterruptedException
    {
        final long deadline = System.nanoTime() + 5_000_000_000L;
        while (fixture.server.counters().inFlight() != 0 && System.nanoTime() < deadline)
        {
            Thread.sleep(1);
        }
        assertEquals(0, fixture.server.counters().inFlight());
    }

    private static byte[] pattern(final int length, final long seed)
    {
        final byte[] bytes = new byte[length];
        new Random(seed).nextBytes(bytes);
        return bytes;
    }

    private byte[] fileBytes(final long offset, final int length) throws IOException
    {
        try (FileChannel channel = FileChannel.open(fixture.file, StandardOpenOption.READ))
        {
            final ByteBuffer buffer = ByteBuffer.allocate(length);
            channel.read(buffer, offset);
            return buffer.array();
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void readWriteRoundTripSimpleAndStructured(final boolean structured) throws IOException
    {
        start(2, false);
        try (RawClient client = fixture.transmission(structured))
        {
            final byte[] data = pattern(12345, 1);
            client.request(CMD_FLAG_FUA, CMD_WRITE, 0xCAFE_0000_0000_0001L, 1000, data.length, data);
            expectOk(client, 0xCAFE_0000_0000_0001L);
            client.request(0, CMD_READ, -1L, 1000, data.length);
            if (structured)
            {
                final RawClient.Reply reply = client.readReply();
                assertEquals(REPLY_TYPE_OFFSET_DATA, reply.type());
                assertTrue(reply.done());
                assertEquals(-1L, reply.cookie());
                assertArrayEquals(ByteBuffer.allocate(8 + data.length).putLong(1000).put(data).array(),
                    reply.payload());
            }
            else
            {
                expectOk(client, -1L);
                assertArrayEquals(data, client.readBytes(data.length));
            }
            assertArrayEquals(data, fileBytes(1000, data.length));
        }
    }

    @Test
    void sparseReadSendsHolesWithoutReadingThem() throws IOException
    {
        start(0, false);
        try (RawClient client = fixture.transmission(true))
        {
            final byte[] data = pattern(65536, 2);
            client.request(0, CMD_WRITE, 1, 1 << 20, data.length, data);
            expectOk(client, 1);
            final long offset = (1 << 20) - (128 << 10);
            client.request(0, CMD_READ, 2, offset, 512 << 10);
            final RawClient.Reply hole = client.readReply();
            assertArrayEquals(ByteBuffer.allocate(12).putLong(offset).putInt(128 << 10).array(), hole.payload());
            assertEquals(REPLY_TYPE_OFFSET_HOLE, hole.type());
            assertFalse(hole.done());
            final RawClient.Reply body = client.readReply();
            assertEquals(REPLY_TYPE_OFFSET_DATA, body.type());
            assertArrayEquals(ByteBuffer.allocate(8 + data.length).putLong(1 << 20).put(data).array(), body.payload());
            final RawClient.Reply tail = client.readReply();
            assertEquals(REPLY_TYPE_OFFSET_HOLE, tail.type());
            assertTrue(tail.done());
            assertArrayEquals(ByteBuffer.allocate(12).putLong((1 << 20) + 65536).putInt((512 - 192) << 10).array(),
                tail.payload());
            // All hole: one chunk.
            client.request(0, CMD_READ, 3, 8 << 20, 1 << 20);
            final RawClient.Reply all = client.readReply();
            assertEquals(REPLY_TYPE_OFFSET_HOLE, all.type());
            assertTrue(all.done());
            // DF: exactly one data chunk, holes as explicit zeroes.
            client.request(CMD_FLAG_DF, CMD_READ, 4, offset, 512 << 10);
            final RawClient.Reply df = client.readReply();
            assertEquals(REPLY_TYPE_OFFSET_DATA, df.type());
            assertTrue(df.done());
            final byte[] expected = new byte[512 << 10];
            System.arraycopy(data, 0, expected, 128 << 10, data.length);
            assertArrayEquals(ByteBuffer.allocate(8 + expected.length).putLong(offset).put(expected).array(),
                df.payload());
        }
    }

    @Test
    void blockStatusDescribesAllocation() throws IOException
    {
        start(0, false);
        try (RawClient client = fixture.transmission(true))
        {
            client.request(0, CMD_WRITE, 1, 64 << 10, 8192, new byte[8192]);
            expectOk(client, 1);
            client.request(0, CMD_BLOCK_STATUS, 2, 0, 256 << 10);
            final RawClient.Reply reply = client.readReply();
            assertEquals(REPLY_TYPE_BLOCK_STATUS, reply.type());
            assertTrue(reply.done());
            assertArrayEquals(ByteBuffer.allocate(28).putInt(1)
                .putInt(64 << 10).putInt(STATE_HOLE | STATE_ZERO)
                .putInt(8192).putInt(0)
                .putInt((256 << 10) - (72 << 10)).putInt(STATE_HOLE | STATE_ZERO).array(), reply.payload());
            client.request(CMD_FLAG_REQ_ONE, CMD_BLOCK_STATUS, 3, 64 << 10, 256 << 10);
            assertArrayEquals(ByteBuffer.allocate(12).putInt(1).putInt(8192).putInt(0).array(),
                client.readReply().payload());
            client.request(0, CMD_WRITE_ZEROES, 4, 64 << 10, 8192);
            expectOk(client, 4);
            client.request(0, CMD_BLOCK_STATUS, 5, 64 << 10, 8192);
            final ByteBuffer zeroed = ByteBuffer.wrap(client.readReply().payload());
            assertEquals(STATE_ZERO, zeroed.getInt(8) & STATE_ZERO, "write-zeroes reads back as zeroes");
        }
    }

    /**
     * Replies sent together go out in completion order, not slot order: the device completes the second write
     * before the first, both on the receiver thread, so both replies leave in one batch. Of two overlapping writes
     * the client must see last the one the device applied last (AX-11).
     */
    @Test
    void repliesSentTogetherGoOutInCompletionOrder() throws IOException
    {
        fixture = new ServerFixture(dir, SIZE, 0, false,
            context -> context.device(new SecondFirstDevice(context.device())));
        try (RawClient client = fixture.transmission(false))
        {
            final ByteBuffer both = ByteBuffer.allocate(2 * (28 + 4096));
            for (long cookie = 1; cookie <= 2; cookie++)
            {
                both.putInt(REQUEST_MAGIC).putShort((short)0).putShort((short)CMD_WRITE).putLong(cookie)
                    .putLong(0).putInt(4096).put(new byte[4096]);
            }
            client.send(both.flip());
            assertEquals(0, client.readSimpleReply(2), "completed first, answered first");
            assertEquals(0, client.readSimpleReply(1));
        }
    }

    /** Holds the first write it gets; when the next one comes, completes that one and then the held one. */
    private static final class SecondFirstDevice extends ForwardingBlockDevice
    {
        private IoCompletion heldCompletion;
        private long heldCookie;

        SecondFirstDevice(final BlockDevice device)
        {
            super(device);
        }

        @Override
        public boolean write(
            final long offset, final MemorySegment buffer, final int length, final int flags,
            final IoCompletion completion, final long cookie)
        {
            if (heldCompletion == null)
            {
                heldCompletion = completion;
                heldCookie = cookie;
                return true;
            }
            completion.onComplete(cookie, length);
            final IoCompletion held = heldCompletion;
            heldCompletion = null;
            held.onComplete(heldCookie, length);
            return true;
        }
    }

    @Test
    void deviceErrorsBecomeErrorReplies() throws IOException
    {
        fixture = new ServerFixture(dir, SIZE, 0, false,
            context -> context.device(new FailingDevice(context.device(), 1 << 20, 2 << 20)));
        try (RawClient simple = fixture.transmission(false); RawClient structured = fixture.transmission(true))
        {
            simple.request(0, CMD_READ, 1, 1 << 20, 4096);
            assertEquals(NBD_EIO, simple.readSimpleReply(1), "simple READ error: no payload follows");
            simple.request(0, CMD_WRITE, 2, 1 << 20, 4096, new byte[4096]);
            assertEquals(NBD_ENOSPC, simple.readSimpleReply(2), "EDQUOT maps to ENOSPC");
            simple.request(0, CMD_FLUSH, 3, 0, 0);
            expectOk(simple, 3);
            structured.request(0, CMD_READ, 4, (1 << 20) - 4096, 8192);
            expectError(structured, 4, NBD_EIO);
            structured.request(0, CMD_BLOCK_STATUS, 5, 1 << 20, 4096);
            expectError(structured, 5, NBD_EIO);
            structured.request(0, CMD_READ, 6, 0, 4096);
            assertArrayEquals(new byte[4096], readStructured(structured, 6, 0, 4096));
        }
        assertEquals(4, fixture.server.counters().errorReplies());
    }

    @Test
    void anUnexpectedExceptionDropsOnlyThatClient() throws Exception
    {
        final java.util.List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
        fixture = new ServerFixture(dir, SIZE, 2, false, context -> context.errorHandler(errors::add)
            .device(new FailingDevice(context.device(), 1 << 20, 2 << 20, true)));
        try (RawClient victim = fixture.transmission(true); RawClient other = fixture.transmission(true))
        {
            victim.request(0, CMD_WRITE, 1, 0, 4096, pattern(4096, 15));
            expectOk(victim, 1);
            victim.request(0, CMD_READ, 2, 1 << 20, 4096);
            assertTrue(victim.closedByServer(), "the connection whose request broke the server is dropped");
            other.request(0, CMD_READ, 3, 0, 4096);
            assertArrayEquals(pattern(4096, 15), readStructured(other, 3, 0, 4096));
        }
        assertEquals(1, errors.size());
        assertEquals("device bug at offset 1048576", errors.get(0).getMessage());
        fixture.server.close();
        assertEquals(0, fixture.server.counters().inFlight());
    }

    @Test
    void tx_bad_request_magic() throws IOException
    {
        start(0, false);
        try (RawClient bad = fixture.transmission(false); RawClient good = fixture.transmission(true))
        {
            bad.send(ByteBuffer.allocate(28).putInt(0, 0x12345678));
            assertTrue(bad.closedByServer());
            good.request(0, CMD_FLUSH, 1, 0, 0);
            expectOk(good, 1);
        }
        assertEquals(1, fixture.server.counters().protocolViolations());
    }

    @Test
    void tx_unknown_command() throws IOException
    {
        start(0, false);
        for (final boolean structured : new boolean[] {false, true})
        {
            try (RawClient client = fixture.transmission(structured))
            {
                client.request(0, 99, 7, 0, 4096);
                expectError(client, 7, NBD_EINVAL);
                client.request(0, CMD_FLUSH, 8, 0, 0);
                expectOk(client, 8);
            }
        }
    }

    @Test
    void tx_unknown_flags() throws IOException
    {
        start(0, false);
        try (RawClient client = fixture.transmission(true))
        {
            final byte[] data = pattern(4096, 3);
            client.request(0x40, CMD_WRITE, 1, 0, 4096, data);
            expectError(client, 1, NBD_EINVAL);
            client.request(CMD_FLAG_DF, CMD_WRITE, 2, 0, 4096, data);
            expectError(client, 2, NBD_EINVAL);
            client.request(CMD_FLAG_REQ_ONE, CMD_READ, 3, 0, 4096);
            expectError(client, 3, NBD_EINVAL);
            client.request(CMD_FLAG_NO_HOLE, CMD_TRIM, 4, 0, 4096);
            expectError(client, 4, NBD_EINVAL);
            client.request(CMD_FLAG_FAST_ZERO, CMD_READ, 5, 0, 4096);
            expectError(client, 5, NBD_EINVAL);
            // The refused WRITE payloads were consumed: the stream is still in sync, and nothing was written.
            client.request(0, CMD_FLUSH, 6, 0, 0);
            expectOk(client, 6);
            assertArrayEquals(new byte[4096], fileBytes(0, 4096));
            client.request(CMD_FLAG_FUA, CMD_FLUSH, 7, 0, 0);
            expectOk(client, 7);
            client.request(0, CMD_FLUSH, 8, 4096, 0);
            expectError(client, 8, NBD_EINVAL);
        }
    }

    @Test
    void abuse_unadvertised_features() throws IOException
    {
        start(0, true);
        try (RawClient client = fixture.transmission(false))
        {
            assertEquals(0, client.transmissionFlags & (TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES | TFLAG_SEND_DF
                | TFLAG_SEND_FAST_ZERO));
            client.request(CMD_FLAG_DF, CMD_READ, 1, 0, 4096);
            expectError(client, 1, NBD_EINVAL);
            client.request(0, CMD_TRIM, 2, 0, 4096);
            expectError(client, 2, NBD_EPERM);
            client.request(CMD_FLAG_FAST_ZERO, CMD_WRITE_ZEROES, 3, 0, 4096);
            expectError(client, 3, NBD_EINVAL);
            client.request(0, CMD_BLOCK_STATUS, 4, 0, 4096);
            expectError(client, 4, NBD_EINVAL);
            client.request(0, CMD_CACHE, 5, 0, 4096);
            expectOk(client, 5);
        }
    }

    @Test
    void tx_out_of_range() throws IOException
    {
        start(0, false);
        final byte[] before = pattern(4096, 4);
        Files.write(fixture.file, before, StandardOpenOption.WRITE);
        try (FileChannel channel = FileChannel.open(fixture.file, StandardOpenOption.WRITE))
        {
            channel.write(ByteBuffer.wrap(before), SIZE - 4096);
        }
        try (RawClient client = fixture.transmission(true))
        {
            final long[][] ranges = {
                {SIZE, 1}, {SIZE - 4096, 8192}, {1L << 63, 4096}, {-4096L, 8192}, {-1L, 1}, {SIZE + 1, 0},
            };
            long cookie = 100;
            for (final long[] range : ranges)
            {
                for (final int type : new int[] {CMD_READ, CMD_TRIM, CMD_CACHE, CMD_BLOCK_STATUS})
                {
                    client.request(0, type, cookie, range[0], range[1]);
                    expectError(client, cookie++, NBD_EINVAL);
                }
                client.request(0, CMD_WRITE_ZEROES, cookie, range[0], range[1]);
                expectError(client, cookie++, NBD_ENOSPC);
                client.request(0, CMD_WRITE, cookie, range[0], range[1], new byte[(int)range[1]]);
                expectError(client, cookie++, NBD_ENOSPC);
            }
            assertArrayEquals(before, fileBytes(SIZE - 4096, 4096), "no partial write of the in-range part");
            assertArrayEquals(before, fileBytes(0, 4096));
        }
    }

    @Test
    void tx_zero_length_requests() throws IOException
    {
        start(0, false);
        for (final boolean structured : new boolean[] {false, true})
        {
            try (RawClient client = fixture.transmission(structured))
            {
                client.request(0, CMD_READ, 1, 4096, 0);
                final RawClient.Reply read = client.readReply();
                assertEquals(0, read.error());
                assertTrue(read.done());
                assertEquals(structured ? REPLY_TYPE_NONE : -1, read.type());
                for (final int type : new int[] {CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES, CMD_CACHE})
                {
                    client.request(0, type, 2, 4096, 0, type == CMD_WRITE ? new byte[0] : null);
                    expectOk(client, 2);
                }
                client.request(0, CMD_BLOCK_STATUS, 3, 4096, 0);
                expectError(client, 3, NBD_EINVAL);
                client.request(0, CMD_READ, 4, SIZE, 0);
                final RawClient.Reply atEnd = client.readReply();
                assertEquals(0, atEnd.error(), "zero-length READ at the end of the export");
                assertEquals(4, atEnd.cookie());
            }
        }
    }

    @Test
    void tx_oversized_requests() throws IOException
    {
        start(0, false);
        try (RawClient client = fixture.transmission(true))
        {
            client.request(0, CMD_READ, 1, 0, (32 << 20) + 1);
            expectError(client, 1, NBD_EINVAL);
            // Exactly the maximum payload works, both ways.
            final byte[] big = pattern(32 << 20, 5);
            client.request(0, CMD_WRITE, 2, 0, big.length, big);
            expectOk(client, 2);
            client.request(CMD_FLAG_DF, CMD_READ, 3, 0, big.length);
            final RawClient.Reply reply = client.readReply();
            assertTrue(reply.done());
            assertArrayEquals(big, Arrays.copyOfRange(reply.payload(), 8, reply.payload().length));
            client.request(0, CMD_WRITE, 4, 0, (32 << 20) + 1);
            assertTrue(client.closedByServer(), "WRITE above 32 MiB is treated as denial of service");
        }
        try (RawClient client = fixture.transmission(false))
        {
            client.request(0, CMD_TRIM, 5, 0, 48 << 20);
            expectOk(client, 5);
        }
    }

    @Test
    void tx_huge_lengths() throws IOException
    {
        start(0, false);
        try (RawClient client = fixture.transmission(false))
        {
            client.request(0, CMD_READ, 1, 0, 0xFFFF_FFFFL);
            expectError(client, 1, NBD_EINVAL);
            client.request(0, CMD_BLOCK_STATUS, 2, 0, 0xFFFF_FFFFL);
            expectError(client, 2, NBD_EINVAL);
            client.request(0, CMD_WRITE_ZEROES, 3, 0, 0xFFFF_FFFFL);
            expectError(client, 3, NBD_ENOSPC);
            client.request(0, CMD_WRITE, 4, 0, 0xFFFF_FFFFL);
            assertTrue(client.closedByServer());
        }
        try (RawClient client = fixture.transmission(false))
        {
            client.request(0, CMD_FLUSH, 5, 0, 0);
            expectOk(client, 5);
        }
    }

    @Test
    void tx_block_status_without_context() throws IOException
    {
        start(0, false);
        try (RawClient client = fixture.connect())
        {
            client.handshake(RawClient.CLIENT_FIXED_NEWSTYLE);
            client.structuredReplies();
            client.go("disk");
            client.request(0, CMD_BLOCK_STATUS, 1, 0, 4096);
            expectError(client, 1, NBD_EINVAL);
        }
    }

    @Test
    void ro_writes_fail_eperm() throws IOException
    {
        start(0, true);
        try (RawClient client = fixture.transmission(true))
        {
            assertEquals(TFLAG_READ_ONLY, client.transmissionFlags & TFLAG_READ_ONLY);
            client.request(0, CMD_WRITE, 1, 0, 4096, pattern(4096, 6));
            expectError(client, 1, NBD_EPERM);
            client.request(0, CMD_WRITE_ZEROES, 2, 0, 4096);
            expectError(client, 2, NBD_EPERM);
            client.request(0, CMD_TRIM, 3, 0, 4096);
            expectError(client, 3, NBD_EPERM);
            client.request(0, CMD_FLUSH, 4, 0, 0);
            expectOk(client, 4);
            client.request(0, CMD_READ, 5, 0, 4096);
            assertArrayEquals(new byte[4096], readStructured(client, 5, 0, 4096));
        }
        assertArrayEquals(new byte[4096], fileBytes(0, 4096));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 2})
    void pipelinedRequestsAllAnsweredBeyondTheSlotBudget(final int workers) throws Exception
    {
        start(workers, false);
        try (RawClient client = fixture.transmission(true))
        {
            final int count = 300;
            final ByteBuffer batch = ByteBuffer.allocate(count * (28 + 4096));
            final Map<Long, byte[]> written = new HashMap<>();
            for (long cookie = 0; cookie < count; cookie++)
            {
                final byte[] data = pattern(4096, cookie);
                written.put(cookie, data);
                batch.putInt(REQUEST_MAGIC).putShort((short)0).putShort((short)CMD_WRITE).putLong(cookie)
                    .putLong(cookie * 4096).putInt(4096).put(data);
            }
            final AtomicReference<Throwable> failure = new AtomicReference<>();
            final Thread sender = Thread.ofPlatform().start(() ->
            {
                try
                {
                    client.send(batch.flip());
                }
                catch (final IOException ex)
                {
                    failure.set(ex);
                }
            });
            final boolean[] seen = new boolean[count];
            for (int i = 0; i < count; i++)
            {
                final RawClient.Reply reply = client.readReply();
                assertEquals(0, reply.error());
                assertFalse(seen[(int)reply.cookie()], "one reply per cookie");
                seen[(int)reply.cookie()] = true;
            }
            sender.join();
            assertNull(failure.get());
            for (long cookie = 0; cookie < count; cookie++)
            {
                client.request(0, CMD_READ, 1000 + cookie, cookie * 4096, 4096);
            }
            for (int i = 0; i < count; i++)
            {
                final RawClient.Reply reply = client.readReply();
                final long cookie = reply.cookie() - 1000;
                assertArrayEquals(ByteBuffer.allocate(8 + 4096).putLong(cookie * 4096).put(written.get(cookie))
                    .array(), reply.payload());
            }
        }
        catch (final InterruptedException ex)
        {
            throw new AssertionError(ex);
        }
        awaitNoneInFlight();
        assertEquals(300, fixture.server.counters().requests(CMD_WRITE));
        assertEquals(300L * 4096, fixture.server.counters().bytes(CMD_WRITE));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 2})
    void slowReaderGetsEveryReplyIntact(final int workers) throws Exception
    {
        start(workers, false);
        final byte[] data = pattern(8 << 20, 14);
        try (FileChannel channel = FileChannel.open(fixture.file, StandardOpenOption.WRITE))
        {
            channel.write(ByteBuffer.wrap(data), 0);
        }
        try (RawClient client = fixture.transmission(false))
        {
            // 64 replies of 512 KiB overflow the socket buffer many times: senders must hand the rest over.
            for (int i = 0; i < 64; i++)
            {
                client.request(0, CMD_READ, i, (i % 16) * (512L << 10), 512 << 10);
            }
            Thread.sleep(200);
            final boolean[] seen = new boolean[64];
            for (int i = 0; i < 64; i++)
            {
                final int cookie = (int)client.readReply().cookie();
                assertFalse(seen[cookie]);
                seen[cookie] = true;
                final int at = (cookie % 16) * (512 << 10);
                assertArrayEquals(Arrays.copyOfRange(data, at, at + (512 << 10)), client.readBytes(512 << 10));
            }
            client.request(0, CMD_FLUSH, 99, 0, 0);
            expectOk(client, 99);
        }
        awaitNoneInFlight();
    }

    @Test
    void tx_disc_completes_outstanding() throws IOException
    {
        start(2, false);
        final byte[] data = pattern(64 << 10, 7);
        try (RawClient client = fixture.transmission(false))
        {
            final ByteBuffer batch = ByteBuffer.allocate(20 * (28 + data.length) + 28);
            for (int i = 0; i < 20; i++)
            {
                batch.putInt(REQUEST_MAGIC).putShort((short)0).putShort((short)CMD_WRITE).putLong(i)
                    .putLong((long)i * data.length).putInt(data.length).put(data);
            }
            batch.putInt(REQUEST_MAGIC).putShort((short)0).putShort((short)CMD_DISC).putLong(99).putLong(0).putInt(0);
            client.send(batch.flip());
            for (int i = 0; i < 20; i++)
            {
                assertEquals(0, client.readReply().error());
            }
            assertTrue(client.closedByServer());
        }
        for (int i = 0; i < 20; i++)
        {
            assertArrayEquals(data, fileBytes((long)i * data.length, data.length));
        }
    }

    @Test
    void tx_abrupt_disconnects() throws Exception
    {
        start(2, false);
        // Half a WRITE payload, then gone.
        try (RawClient client = fixture.transmission(false))
        {
            client.request(0, CMD_WRITE, 1, 0, 1 << 20, new byte[4096]);
        }
        // A truncated header.
        try (RawClient client = fixture.transmission(false))
        {
            client.send(new byte[] {0x25, 0x60, (byte)0x95, 0x13, 0, 0});
        }
        // Many large reads in flight and their replies never read.
        try (RawClient client = fixture.transmission(true))
        {
            for (int i = 0; i < 64; i++)
            {
                client.request(CMD_FLAG_DF, CMD_READ, i, 0, 1 << 20);
            }
            client.readBytes(100);
        }
        final byte[] data = pattern(4096, 8);
        try (RawClient client = fixture.transmission(true))
        {
            client.request(0, CMD_WRITE, 1, 8192, data.length, data);
            expectOk(client, 1);
            client.request(0, CMD_READ, 2, 8192, data.length);
            assertArrayEquals(data, readStructured(client, 2, 8192, data.length));
        }
        final long deadline = System.nanoTime() + 10_000_000_000L;
        while (fixture.server.connectionCount() > 0 && System.nanoTime() < deadline)
        {
            Thread.sleep(10);
        }
        assertEquals(0, fixture.server.connectionCount(), "every vanished client was cleaned up");
        assertEquals(0, fixture.server.counters().inFlight());
    }

    @Test
    void misbehavingClientsDoNotDisturbAWellBehavedOne() throws Exception
    {
        start(2, false);
        final AtomicBoolean running = new AtomicBoolean(true);
        final Thread vandal = Thread.ofPlatform().start(() ->
        {
            final Random random = new Random(9);
            int round = 0;
            while (running.get())
            {
                try (RawClient client = round % 2 == 0 ? fixture.connect() : fixture.transmission(round % 4 == 1))
                {
                    final byte[] garbage = new byte[1 + random.nextInt(300)];
                    random.nextBytes(garbage);
                    if (round % 3 == 0)
                    {
                        ByteBuffer.wrap(garbage, 0, Math.min(garbage.length, 4)).putInt(REQUEST_MAGIC);
                    }
                    client.send(garbage);
                    if (round % 5 == 0)
                    {
                        client.request(0, CMD_WRITE, 1, 0, 0xFFFF_FFFFL);
                    }
                }
                catch (final IOException | AssertionError ex)
                {
                    // The server may close on us at any point: that is the expected outcome.
                }
                round++;
            }
        });
        try (RawClient client = fixture.transmission(true))
        {
            final Random random = new Random(10);
            for (int i = 0; i < 300; i++)
            {
                final int length = 512 * (1 + random.nextInt(64));
                final long offset = 512L * random.nextInt((int)((SIZE - length) / 512));
                final byte[] data = pattern(length, i);
                client.request(0, CMD_WRITE, i, offset, length, data);
                expectOk(client, i);
                client.request(0, CMD_READ, i, offset, length);
                assertArrayEquals(data, readStructured(client, i, offset, length));
            }
        }
        finally
        {
            running.set(false);
            vandal.join();
        }
        assertTrue(fixture.server.counters().protocolViolations() > 0);
    }

    @Test
    void multiConnFlushOnOneConnectionCoversWritesOfAnother() throws IOException
    {
        start(2, false);
        try (RawClient a = fixture.transmission(false); RawClient b = fixture.transmission(true))
        {
            assertEquals(TFLAG_CAN_MULTI_CONN, a.transmissionFlags & TFLAG_CAN_MULTI_CONN);
            final byte[] data = pattern(8192, 11);
            a.request(0, CMD_WRITE, 1, 4096, data.length, data);
            expectOk(a, 1);
            b.request(0, CMD_FLUSH, 2, 0, 0);
            expectOk(b, 2);
            b.request(0, CMD_READ, 3, 4096, data.length);
            assertArrayEquals(data, readStructured(b, 3, 4096, data.length));
            // The flush reached the file itself, which another process would read.
            assertArrayEquals(data, fileBytes(4096, data.length));
        }
    }

    @Test
    void trimWithFuaAndWriteZeroesFlags() throws IOException
    {
        start(2, false);
        try (RawClient client = fixture.transmission(true))
        {
            final byte[] data = pattern(65536, 12);
            client.request(0, CMD_WRITE, 1, 0, data.length, data);
            expectOk(client, 1);
            client.request(CMD_FLAG_FUA, CMD_TRIM, 2, 0, 32768);
            expectOk(client, 2);
            client.request(CMD_FLAG_NO_HOLE | CMD_FLAG_FUA, CMD_WRITE_ZEROES, 3, 32768, 16384);
            expectOk(client, 3);
            if ((client.transmissionFlags & TFLAG_SEND_FAST_ZERO) != 0)
            {
                client.request(CMD_FLAG_FAST_ZERO, CMD_WRITE_ZEROES, 4, 49152, 16384);
                final RawClient.Reply reply = client.readReply();
                assertTrue(reply.error() == 0 || reply.error() == NBD_ENOTSUP, "fast zero: done or ENOTSUP");
            }
            client.request(0, CMD_READ, 5, 32768, 16384);
            assertArrayEquals(new byte[16384], readStructured(client, 5, 32768, 16384));
        }
    }

    @Test
    void closeDoesNotWaitForeverForAClientThatNeverReads() throws Exception
    {
        fixture = new ServerFixture(dir, SIZE, 2, false, context -> context.drainTimeoutNanos(300_000_000L));
        final RawClient client = fixture.transmission(true);
        for (int i = 0; i < 64; i++)
        {
            client.request(CMD_FLAG_DF, CMD_READ, i, 0, 1 << 20);
        }
        final long deadline = System.nanoTime() + 5_000_000_000L;
        // The 8 MiB budget of 1 MiB buffers runs out first: the receiver then waits for replies to drain.
        while (fixture.server.counters().backPressureWaits() == 0 && System.nanoTime() < deadline)
        {
            Thread.sleep(1);
        }
        final long start = System.nanoTime();
        fixture.server.close();
        final long tookMillis = (System.nanoTime() - start) / 1_000_000;
        assertTrue(tookMillis < 3000, "close took " + tookMillis + " ms");
        assertEquals(0, fixture.server.counters().inFlight(), "every request completed");
        assertEquals(0, fixture.server.connectionCount());
        client.close();
    }

    @Test
    void closeDrainsInFlightRequestsAndFlushes() throws Exception
    {
        start(2, false);
        final byte[] data = pattern(256 << 10, 13);
        final RawClient client = fixture.transmission(false);
        final ByteBuffer batch = ByteBuffer.allocate(16 * (28 + data.length));
        for (int i = 0; i < 16; i++)
        {
            batch.putInt(REQUEST_MAGIC).putShort((short)0).putShort((short)CMD_WRITE).putLong(i)
                .putLong((long)i * data.length).putInt(data.length).put(data);
        }
        client.send(batch.flip());
        final int[] answered = new int[1];
        final Thread reader = Thread.ofPlatform().start(() ->
        {
            try
            {
                while (true)
                {
                    assertEquals(0, client.readReply().error());
                    answered[0]++;
                }
            }
            catch (final IOException ex)
            {
                // Closed by the server after the drain.
            }
        });
        // Give the server a moment to read the requests, then shut it down underneath the client.
        final long deadline = System.nanoTime() + 5_000_000_000L;
        while (fixture.server.counters().requests(CMD_WRITE) < 16 && System.nanoTime() < deadline)
        {
            Thread.sleep(1);
        }
        fixture.server.close();
        reader.join();
        client.close();
        assertEquals(16, answered[0], "every accepted request was answered before the connection closed");
        for (int i = 0; i < 16; i++)
        {
            assertArrayEquals(data, fileBytes((long)i * data.length, data.length));
        }
        assertFalse(Files.exists(fixture.socket), "socket file removed");
    }
}
