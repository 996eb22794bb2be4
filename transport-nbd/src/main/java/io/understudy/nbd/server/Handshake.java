package io.understudy.nbd.server;

import io.understudy.engine.device.BlockDevice;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

import static io.understudy.nbd.protocol.NbdProtocol.*;

/**
 * The fixed newstyle handshake of one connection, run on its receiver thread: greeting, client flags, then
 * options until NBD_OPT_GO or NBD_OPT_EXPORT_NAME selects the export (or the client aborts or misbehaves).
 * <p>
 * Not a hot path: replies are built in small heap buffers. Requests are read with exact lengths into the
 * connection's receive buffer, so no byte of the transmission phase is consumed here.
 */
final class Handshake
{
    private static final System.Logger LOG = NbdServer.LOG;
    /** Largest option data we keep; longer data is read and discarded, and the option refused. */
    private static final int MAX_OPTION_LENGTH = 64 << 10;
    /** Longer options are treated as denial of service (the spec allows a disconnect) rather than consumed. */
    private static final long MAX_SKIPPED_OPTION_LENGTH = 16 << 20;
    private static final byte[] NO_ZEROES_PADDING = new byte[124];

    private final NbdConnection connection;
    private final NbdServer.Context context;
    private final SocketChannel channel;
    private final ByteBuffer rx;
    private final String peer;
    private final byte[] exportName;

    private boolean noZeroes;
    private boolean structuredReplies;
    private boolean baseAllocation;

    Handshake(
        final NbdConnection connection, final NbdServer.Context context, final SocketChannel channel,
        final ByteBuffer rx, final String peer)
    {
        this.connection = connection;
        this.context = context;
        this.channel = channel;
        this.rx = rx;
        this.peer = peer;
        this.exportName = context.exportName().getBytes(StandardCharsets.UTF_8);
    }

    /** @return true if the client entered transmission, false if the session ended during negotiation. */
    boolean run() throws IOException
    {
        final ByteBuffer greeting = ByteBuffer.allocate(18)
            .putLong(NBDMAGIC).putLong(IHAVEOPT).putShort((short)(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)).flip();
        send(greeting);
        if (!read(4))
        {
            connection.protocolViolation("truncated handshake: no client flags");
            return false;
        }
        final int clientFlags = rx.getInt();
        if ((clientFlags & ~(CLIENT_FLAG_FIXED_NEWSTYLE | CLIENT_FLAG_NO_ZEROES)) != 0)
        {
            connection.protocolViolation(String.format("unknown client flags 0x%08x", clientFlags));
            return false;
        }
        noZeroes = (clientFlags & CLIENT_FLAG_NO_ZEROES) != 0;
        while (true)
        {
            if (!read(OPTION_HEADER_LENGTH))
            {
                if (rx.limit() > 0)
                {
                    connection.protocolViolation("truncated option header");
                }
                else
                {
                    LOG.log(System.Logger.Level.DEBUG, "NBD client {0} left during negotiation", peer);
                }
                return false;
            }
            final long magic = rx.getLong();
            final int option = rx.getInt();
            final long length = rx.getInt() & 0xFFFF_FFFFL;
            if (magic != IHAVEOPT)
            {
                connection.protocolViolation(String.format("bad option magic 0x%016x", magic));
                return false;
            }
            if (length > MAX_SKIPPED_OPTION_LENGTH)
            {
                connection.protocolViolation("option " + option + " of " + length + " bytes (limit 16 MiB)");
                return false;
            }
            if (length > MAX_OPTION_LENGTH)
            {
                if (!discard(length))
                {
                    connection.protocolViolation("truncated data of option " + option);
                    return false;
                }
                final boolean known = option == OPT_EXPORT_NAME || option == OPT_INFO || option == OPT_GO
                    || option == OPT_LIST_META_CONTEXT || option == OPT_SET_META_CONTEXT;
                if (option == OPT_EXPORT_NAME)
                {
                    LOG.log(System.Logger.Level.INFO, "NBD client {0} sent an export name of {1} bytes; closing",
                        peer, length);
                    return false;
                }
                replyError(option, known ? REP_ERR_TOO_BIG : REP_ERR_UNSUP, "option data longer than 64 KiB");
                continue;
            }
            if (!read((int)length))
            {
                connection.protocolViolation("truncated data of option " + option);
                return false;
            }
            if (connectionShuttingDown(option))
            {
                continue;
            }
            switch (option)
            {
                case OPT_EXPORT_NAME ->
                {
                    if (!isOurExport(rx, (int)length))
                    {
                        LOG.log(System.Logger.Level.INFO, "NBD client {0} asked for an unknown export; closing "
                            + "(NBD_OPT_EXPORT_NAME cannot report errors)", peer);
                        return false;
                    }
                    final int flags = transmissionFlags();
                    final ByteBuffer reply = ByteBuffer.allocate(10 + (noZeroes ? 0 : 124))
                        .putLong(context.device().size()).putShort((short)flags);
                    if (!noZeroes)
                    {
                        reply.put(NO_ZEROES_PADDING);
                    }
                    send(reply.flip());
                    enter(flags);
                    return true;
                }
                case OPT_ABORT ->
                {
                    try
                    {
                        reply(option, REP_ACK, null);
                    }
                    catch (final IOException ex)
                    {
                        // Clients may close right after sending ABORT (older servers did not reply): not an error.
                        LOG.log(System.Logger.Level.DEBUG, "NBD client {0} closed before the ABORT reply", peer);
                    }
                    return false;
                }
                case OPT_LIST -> list(length);
                case OPT_STARTTLS ->
                    replyError(option, length == 0 ? REP_ERR_POLICY : REP_ERR_INVALID,
                        length == 0 ? "TLS is not supported by this server" : "STARTTLS carries no data");
                case OPT_INFO, OPT_GO ->
                {
                    if (info(option, (int)length))
                    {
                        return true;
                    }
                }
                case OPT_STRUCTURED_REPLY ->
                {
                    if (length != 0)
                    {
                        replyError(option, REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY carries no data");
                    }
                    else
                    {
                        structuredReplies = true;
                        reply(option, REP_ACK, null);
                    }
                }
                case OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT -> metaContext(option, (int)length);
                default ->
                {
                    LOG.log(System.Logger.Level.DEBUG, "NBD client {0}: unsupported option {1}", peer, option);
                    replyError(option, REP_ERR_UNSUP, "option not supported");
                }
            }
        }
    }

    private boolean connectionShuttingDown(final int option) throws IOException
    {
        if (option == OPT_ABORT || !connection.isServerClosing())
        {
            return false;
        }
        replyError(option, REP_ERR_SHUTDOWN, "server is shutting down");
        return true;
    }

    private void list(final long length) throws IOException
    {
        if (length != 0)
        {
            replyError(OPT_LIST, REP_ERR_INVALID, "NBD_OPT_LIST carries no data");
            return;
        }
        final byte[] description = description();
        final ByteBuffer server = ByteBuffer.allocate(4 + exportName.length + description.length)
            .putInt(exportName.length).put(exportName).put(description).flip();
        reply(OPT_LIST, REP_SERVER, server);
        reply(OPT_LIST, REP_ACK, null);
    }

    /** NBD_OPT_INFO / NBD_OPT_GO; returns true if GO succeeded and transmission starts. */
    private boolean info(final int option, final int length) throws IOException
    {
        if (length < 6)
        {
            replyError(option, REP_ERR_INVALID, "option data shorter than 6 bytes");
            return false;
        }
        final long nameLength = rx.getInt(0) & 0xFFFF_FFFFL;
        if (nameLength > length - 6)
        {
            replyError(option, REP_ERR_INVALID, "export name length exceeds the option");
            return false;
        }
        final int requests = rx.getShort(4 + (int)nameLength) & 0xFFFF;
        if (4 + nameLength + 2 + 2L * requests != length)
        {
            replyError(option, REP_ERR_INVALID, "information request count does not match the option length");
            return false;
        }
        if (!isName(rx, 4, (int)nameLength))
        {
            replyError(option, REP_ERR_UNKNOWN, "no such export");
            return false;
        }
        boolean wantName = false;
        boolean wantDescription = false;
        for (int i = 0; i < requests; i++)
        {
            final int type = rx.getShort(4 + (int)nameLength + 2 + 2 * i) & 0xFFFF;
            wantName |= type == INFO_NAME;
            wantDescription |= type == INFO_DESCRIPTION;
        }
        final int flags = transmissionFlags();
        reply(option, REP_INFO, ByteBuffer.allocate(12).putShort((short)INFO_EXPORT)
            .putLong(context.device().size()).putShort((short)flags).flip());
        if (wantName)
        {
            reply(option, REP_INFO, ByteBuffer.allocate(2 + exportName.length)
                .putShort((short)INFO_NAME).put(exportName).flip());
        }
        if (wantDescription && context.description() != null)
        {
            final byte[] description = description();
            reply(option, REP_INFO, ByteBuffer.allocate(2 + description.length)
                .putShort((short)INFO_DESCRIPTION).put(description).flip());
        }
        // Always sent: the minimum is the device alignment, and clients that know it send aligned requests.
        reply(option, REP_INFO, ByteBuffer.allocate(14).putShort((short)INFO_BLOCK_SIZE)
            .putInt(context.minimumBlockSize())
            .putInt(Math.max(context.minimumBlockSize(), NbdServer.Context.PREFERRED_BLOCK_SIZE))
            .putInt(MAX_PAYLOAD).flip());
        reply(option, REP_ACK, null);
        if (option == OPT_GO)
        {
            enter(flags);
            return true;
        }
        return false;
    }

    private void metaContext(final int option, final int length) throws IOException
    {
        if (option == OPT_SET_META_CONTEXT)
        {
            // The selection is replaced even when the option fails.
            baseAllocation = false;
        }
        if (!structuredReplies)
        {
            replyError(option, REP_ERR_INVALID, "negotiate NBD_OPT_STRUCTURED_REPLY first");
            return;
        }
        if (length < 8)
        {
            replyError(option, REP_ERR_INVALID, "option data shorter than 8 bytes");
            return;
        }
        final long nameLength = rx.getInt(0) & 0xFFFF_FFFFL;
        if (nameLength > length - 8)
        {
            replyError(option, REP_ERR_INVALID, "export name length exceeds the option");
            return;
        }
        final int queriesAt = 4 + (int)nameLength;
        final long queries = rx.getInt(queriesAt) & 0xFFFF_FFFFL;
        int at = queriesAt + 4;
        boolean matched = false;
        for (long i = 0; i < queries; i++)
        {
            if (at + 4 > length)
            {
                replyError(option, REP_ERR_INVALID, "truncated meta context query");
                return;
            }
            final long queryLength = rx.getInt(at) & 0xFFFF_FFFFL;
            if (queryLength > length - at - 4)
            {
                replyError(option, REP_ERR_INVALID, "meta context query length exceeds the option");
                return;
            }
            final String query = decode(at + 4, (int)queryLength);
            matched |= query != null && (query.equals(META_CONTEXT_BASE_ALLOCATION)
                || (option == OPT_LIST_META_CONTEXT && query.equals("base:")));
            at += 4 + (int)queryLength;
        }
        if (at != length)
        {
            replyError(option, REP_ERR_INVALID, "trailing bytes after the meta context queries");
            return;
        }
        if (!isName(rx, 4, (int)nameLength))
        {
            replyError(option, REP_ERR_UNKNOWN, "no such export");
            return;
        }
        if (option == OPT_LIST_META_CONTEXT && queries == 0)
        {
            matched = true;
        }
        if (matched)
        {
            final byte[] name = META_CONTEXT_BASE_ALLOCATION.getBytes(StandardCharsets.US_ASCII);
            reply(option, REP_META_CONTEXT, ByteBuffer.allocate(4 + name.length)
                .putInt(option == OPT_SET_META_CONTEXT ? 1 : 0).put(name).flip());
        }
        if (option == OPT_SET_META_CONTEXT)
        {
            baseAllocation = matched;
        }
        reply(option, REP_ACK, null);
    }

    /**
     * Transmission flags of this export for this connection. CAN_MULTI_CONN is honest: every connection shares
     * the one {@link BlockDevice} (one file descriptor, one page cache), a write is visible to every reader once
     * it completes, and FLUSH is an fdatasync of the whole file, which persists the writes completed on any
     * connection; FUA writes persist their own data before completing.
     */
    private int transmissionFlags()
    {
        final BlockDevice device = context.device();
        int flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_SEND_CACHE | TFLAG_CAN_MULTI_CONN;
        if (context.readOnly())
        {
            flags |= TFLAG_READ_ONLY;
        }
        else
        {
            flags |= TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES;
            if (device.canFastZero())
            {
                flags |= TFLAG_SEND_FAST_ZERO;
            }
        }
        if (structuredReplies)
        {
            flags |= TFLAG_SEND_DF;
        }
        return flags;
    }

    private void enter(final int flags)
    {
        connection.negotiated(structuredReplies, structuredReplies && baseAllocation, flags);
    }

    private boolean isOurExport(final ByteBuffer buffer, final int length)
    {
        return isName(buffer, 0, length);
    }

    /** The export answers its own name and the empty name (the default export). */
    private boolean isName(final ByteBuffer buffer, final int at, final int length)
    {
        if (length == 0)
        {
            return true;
        }
        if (length != exportName.length)
        {
            return false;
        }
        for (int i = 0; i < length; i++)
        {
            if (buffer.get(at + i) != exportName[i])
            {
                return false;
            }
        }
        return true;
    }

    private String decode(final int at, final int length)
    {
        try
        {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .decode(rx.slice(at, length)).toString();
        }
        catch (final CharacterCodingException ex)
        {
            return null;
        }
    }

    private byte[] description()
    {
        return context.description() == null ? new byte[0] : context.description().getBytes(StandardCharsets.UTF_8);
    }

    private void replyError(final int option, final int type, final String message) throws IOException
    {
        reply(option, type, ByteBuffer.wrap(message.getBytes(StandardCharsets.UTF_8)));
    }

    private void reply(final int option, final int type, final ByteBuffer data) throws IOException
    {
        final int length = data == null ? 0 : data.remaining();
        final ByteBuffer reply = ByteBuffer.allocate(OPTION_REPLY_HEADER_LENGTH + length)
            .putLong(OPTION_REPLY_MAGIC).putInt(option).putInt(type).putInt(length);
        if (data != null)
        {
            reply.put(data);
        }
        send(reply.flip());
    }

    private void send(final ByteBuffer buffer) throws IOException
    {
        while (buffer.hasRemaining())
        {
            channel.write(buffer);
        }
    }

    /** Reads and drops {@code length} bytes of option data; false at end of stream. */
    private boolean discard(final long length) throws IOException
    {
        long left = length;
        while (left > 0)
        {
            rx.clear().limit((int)Math.min(left, rx.capacity()));
            final int read = channel.read(rx);
            if (read < 0)
            {
                return false;
            }
            left -= read;
        }
        return true;
    }

    /** Reads exactly {@code length} bytes into {@link #rx} (position 0, limit length); false at end of stream. */
    private boolean read(final int length) throws IOException
    {
        rx.clear().limit(length);
        while (rx.hasRemaining())
        {
            if (channel.read(rx) < 0)
            {
                rx.limit(rx.position());
                return false;
            }
        }
        rx.flip();
        return true;
    }
}
