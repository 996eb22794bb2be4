package io.understudy.nbd.control;

/**
 * Wire constants of the control link between a primary and a secondary sidecar (version 1).
 * <p>
 * <b>Frame</b> (big-endian, as NBD), one per message, written whole and flushed:
 * <pre>
 *   0       4       6       8                      16      20
 *   +-------+-------+-------+-----------------------+-------+------------------------+
 *   | magic |version| type  | correlation id        |length | payload (length bytes) |
 *   | u32   | u16   | u16   | u64                   | u32   | <= MAX_PAYLOAD         |
 *   +-------+-------+-------+-----------------------+-------+------------------------+
 * </pre>
 * A reply carries the correlation id of its request; unsolicited frames carry 0. Strings are a u16 byte
 * length followed by UTF-8 bytes.
 * <p>
 * <b>Messages</b> (payloads):
 * <pre>
 *   HELLO              P->S  u64 disk size | u32 cluster size | u8 shared | u64 generation id | u64 epoch
 *                            | u32 heartbeat interval ms | u32 heartbeat timeout ms
 *   HELLO_ACK          S->P  u64 generation id (echoed) | u64 epoch of the secondary
 *   REFUSE             S->P  u16 reason code (RefusalCode wire code) | string reason; the secondary closes the
 *                            connection
 *   CHECKPOINT_PREPARE P->S  u64 timeout ns (relative: the hosts' clocks are not compared) | u64 primary epoch
 *   CHECKPOINT_DONE    S->P  i32 result (0 or negated errno) | u64 secondary epoch | string reason
 *   HEARTBEAT          both  u64 epoch of the sender
 *   GOODBYE            both  u8 failover (1: the sender took over or dropped its peer) | string reason
 * </pre>
 * <b>Sequence</b>: the primary connects and sends HELLO; the secondary answers HELLO_ACK (the link is up) or
 * REFUSE with a named reason (version, disk size, cluster size, mode, busy, not running, protocol, epoch). Both sides then send
 * a HEARTBEAT every interval the primary proposed, and each declares the peer lost when nothing arrived for
 * the timeout. The primary runs the secondary's part of a checkpoint with CHECKPOINT_PREPARE, while it holds
 * the guest, and waits for CHECKPOINT_DONE until its own deadline. Either side ends the link with GOODBYE.
 * <p>
 * <b>Versioning</b>: a receiver refuses (REFUSE_VERSION) or drops a frame whose version it does not speak;
 * version 1 is the only one. New message types need a new version; unknown types in version 1 are a protocol
 * error that ends the link.
 */
public final class ControlProtocol
{
    public static final int MAGIC = 0x5553_4c4b; // "USLK"
    public static final short VERSION = 1;
    public static final int HEADER_LENGTH = 20;
    public static final int MAX_PAYLOAD = 4096;

    public static final short HELLO = 1;
    public static final short HELLO_ACK = 2;
    public static final short REFUSE = 3;
    public static final short CHECKPOINT_PREPARE = 4;
    public static final short CHECKPOINT_DONE = 5;
    public static final short HEARTBEAT = 6;
    public static final short GOODBYE = 7;


    private ControlProtocol()
    {
    }

    /** @return the name of a message type for logs and errors. */
    public static String typeName(final int type)
    {
        return switch (type)
        {
            case HELLO -> "HELLO";
            case HELLO_ACK -> "HELLO_ACK";
            case REFUSE -> "REFUSE";
            case CHECKPOINT_PREPARE -> "CHECKPOINT_PREPARE";
            case CHECKPOINT_DONE -> "CHECKPOINT_DONE";
            case HEARTBEAT -> "HEARTBEAT";
            case GOODBYE -> "GOODBYE";
            default -> "type " + type;
        };
    }
}
