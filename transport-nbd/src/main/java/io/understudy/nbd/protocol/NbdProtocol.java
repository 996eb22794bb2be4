package io.understudy.nbd.protocol;

import io.understudy.engine.device.Errno;

/**
 * Constants of the NBD protocol (NetworkBlockDevice/nbd {@code doc/proto.md}), fixed newstyle negotiation and
 * compact (non-extended) headers. All integers on the wire are big-endian.
 * <pre>
 * Server greeting (18 bytes):
 *   0                   8                   16    18
 *   +-------------------+-------------------+-----+
 *   | "NBDMAGIC"  u64   | "IHAVEOPT"  u64   |flags| u16 handshake flags
 *   +-------------------+-------------------+-----+
 * Option request (16 bytes + data):  u64 IHAVEOPT | u32 option | u32 length | data[length]
 * Option reply   (20 bytes + data):  u64 OPTION_REPLY_MAGIC | u32 option | u32 reply type | u32 length | data
 *
 * Request (28 bytes + payload for WRITE):
 *   0       4       6       8               16              24      28
 *   +-------+-------+-------+---------------+---------------+-------+
 *   | magic | flags | type  |    cookie     |    offset     |length |
 *   +-------+-------+-------+---------------+---------------+-------+
 * Simple reply (16 bytes + data for a successful READ):
 *   0       4       8               16
 *   +-------+-------+---------------+
 *   | magic | error |    cookie     |
 *   +-------+-------+---------------+
 * Structured reply chunk (20 bytes + payload):
 *   0       4       6       8               16      20
 *   +-------+-------+-------+---------------+-------+
 *   | magic | flags | type  |    cookie     |length |
 *   +-------+-------+-------+---------------+-------+
 * </pre>
 */
public final class NbdProtocol
{
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    public static final long IHAVEOPT = 0x49484156454F5054L;
    public static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;
    public static final int REQUEST_MAGIC = 0x25609513;
    public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    public static final int REQUEST_HEADER_LENGTH = 28;
    public static final int SIMPLE_REPLY_LENGTH = 16;
    public static final int CHUNK_HEADER_LENGTH = 20;
    public static final int OPTION_HEADER_LENGTH = 16;
    public static final int OPTION_REPLY_HEADER_LENGTH = 20;

    public static final int FLAG_FIXED_NEWSTYLE = 1;
    public static final int FLAG_NO_ZEROES = 2;
    public static final int CLIENT_FLAG_FIXED_NEWSTYLE = 1;
    public static final int CLIENT_FLAG_NO_ZEROES = 2;

    public static final int OPT_EXPORT_NAME = 1;
    public static final int OPT_ABORT = 2;
    public static final int OPT_LIST = 3;
    public static final int OPT_STARTTLS = 5;
    public static final int OPT_INFO = 6;
    public static final int OPT_GO = 7;
    public static final int OPT_STRUCTURED_REPLY = 8;
    public static final int OPT_LIST_META_CONTEXT = 9;
    public static final int OPT_SET_META_CONTEXT = 10;
    public static final int OPT_EXTENDED_HEADERS = 11;

    public static final int REP_ACK = 1;
    public static final int REP_SERVER = 2;
    public static final int REP_INFO = 3;
    public static final int REP_META_CONTEXT = 4;
    public static final int REP_ERR_UNSUP = 0x8000_0001;
    public static final int REP_ERR_POLICY = 0x8000_0002;
    public static final int REP_ERR_INVALID = 0x8000_0003;
    public static final int REP_ERR_PLATFORM = 0x8000_0004;
    public static final int REP_ERR_TLS_REQD = 0x8000_0005;
    public static final int REP_ERR_UNKNOWN = 0x8000_0006;
    public static final int REP_ERR_SHUTDOWN = 0x8000_0007;
    public static final int REP_ERR_BLOCK_SIZE_REQD = 0x8000_0008;
    public static final int REP_ERR_TOO_BIG = 0x8000_0009;

    public static final int INFO_EXPORT = 0;
    public static final int INFO_NAME = 1;
    public static final int INFO_DESCRIPTION = 2;
    public static final int INFO_BLOCK_SIZE = 3;

    public static final int TFLAG_HAS_FLAGS = 1;
    public static final int TFLAG_READ_ONLY = 1 << 1;
    public static final int TFLAG_SEND_FLUSH = 1 << 2;
    public static final int TFLAG_SEND_FUA = 1 << 3;
    public static final int TFLAG_ROTATIONAL = 1 << 4;
    public static final int TFLAG_SEND_TRIM = 1 << 5;
    public static final int TFLAG_SEND_WRITE_ZEROES = 1 << 6;
    public static final int TFLAG_SEND_DF = 1 << 7;
    public static final int TFLAG_CAN_MULTI_CONN = 1 << 8;
    public static final int TFLAG_SEND_CACHE = 1 << 10;
    public static final int TFLAG_SEND_FAST_ZERO = 1 << 11;

    public static final int CMD_READ = 0;
    public static final int CMD_WRITE = 1;
    public static final int CMD_DISC = 2;
    public static final int CMD_FLUSH = 3;
    public static final int CMD_TRIM = 4;
    public static final int CMD_CACHE = 5;
    public static final int CMD_WRITE_ZEROES = 6;
    public static final int CMD_BLOCK_STATUS = 7;
    /** Number of command types, for per-type counters. */
    public static final int CMD_TYPES = 8;

    public static final int CMD_FLAG_FUA = 1;
    public static final int CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int CMD_FLAG_DF = 1 << 2;
    public static final int CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int CMD_FLAG_FAST_ZERO = 1 << 4;

    public static final int REPLY_FLAG_DONE = 1;
    public static final int REPLY_TYPE_NONE = 0;
    public static final int REPLY_TYPE_OFFSET_DATA = 1;
    public static final int REPLY_TYPE_OFFSET_HOLE = 2;
    public static final int REPLY_TYPE_BLOCK_STATUS = 5;
    public static final int REPLY_TYPE_ERROR = 0x8001;

    public static final int STATE_HOLE = 1;
    public static final int STATE_ZERO = 2;

    public static final String META_CONTEXT_BASE_ALLOCATION = "base:allocation";

    /** NBD error values; the protocol fixes them to the Linux numbers. */
    public static final int NBD_EPERM = 1;
    public static final int NBD_EIO = 5;
    public static final int NBD_ENOMEM = 12;
    public static final int NBD_EINVAL = 22;
    public static final int NBD_ENOSPC = 28;
    public static final int NBD_EOVERFLOW = 75;
    public static final int NBD_ENOTSUP = 95;
    public static final int NBD_ESHUTDOWN = 108;

    /** Largest payload any request may carry; larger WRITEs are a denial of service and disconnect. */
    public static final int MAX_PAYLOAD = 32 << 20;
    /** Largest string the spec allows (export names, descriptions). */
    public static final int MAX_STRING = 4096;

    private NbdProtocol()
    {
    }

    /**
     * Maps a device errno (positive) to the NBD error set: the protocol defines only a few values and clients
     * treat the rest as EINVAL, so storage-specific errors are folded onto their nearest meaning.
     */
    public static int nbdError(final int errno)
    {
        return switch (errno)
        {
            case Errno.EPERM, Errno.EROFS, Errno.EACCES -> NBD_EPERM;
            case Errno.EINVAL -> NBD_EINVAL;
            case Errno.ENOSPC, Errno.EDQUOT, Errno.EFBIG -> NBD_ENOSPC;
            case Errno.ENOMEM -> NBD_ENOMEM;
            case Errno.EOVERFLOW -> NBD_EOVERFLOW;
            case Errno.ENOTSUP -> NBD_ENOTSUP;
            case Errno.ESHUTDOWN -> NBD_ESHUTDOWN;
            default -> NBD_EIO;
        };
    }

    public static String commandName(final int type)
    {
        return switch (type)
        {
            case CMD_READ -> "READ";
            case CMD_WRITE -> "WRITE";
            case CMD_DISC -> "DISC";
            case CMD_FLUSH -> "FLUSH";
            case CMD_TRIM -> "TRIM";
            case CMD_CACHE -> "CACHE";
            case CMD_WRITE_ZEROES -> "WRITE_ZEROES";
            case CMD_BLOCK_STATUS -> "BLOCK_STATUS";
            default -> "command " + type;
        };
    }
}
