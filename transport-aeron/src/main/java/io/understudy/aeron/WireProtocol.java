package io.understudy.aeron;

/**
 * The wire schema of the Aeron links (schema {@link #SCHEMA_ID}, version {@link #VERSION}): stream ids, message
 * templates and the rules every codec follows. Each message is one Aeron message (fragmented by the publication and
 * reassembled by a fragment assembler when longer than the MTU) made of a {@link MessageHeader} and a fixed block,
 * optionally followed by variable data. All integers are little-endian, as in SBE and Aeron's own frames.
 * <p>
 * <b>Streams</b> (the same ids over UDP and IPC):
 * <pre>
 *   DATA_STREAM_ID    1001  primary -> secondary, on the secondary's channel (its endpoint, or aeron:ipc):
 *                           requests and BARRIER, in order; each primary publishes with a session id of its own
 *                           (the same on both of its streams), which is how the secondary tells primaries apart
 *   CONTROL_STREAM_ID 1003  primary -> secondary, same channel: HELLO, HEARTBEAT, GOODBYE; apart from the data
 *                           so that a secondary holding data back (its sink is busy or a checkpoint runs) still
 *                           hears the primary's heartbeats
 *   REPLY_STREAM_ID   1002  secondary -> primary, on the reply channel the primary names in HELLO (its own
 *                           endpoint with an ephemeral port over UDP, aeron:ipc over IPC): everything the
 *                           secondary sends, in order
 * </pre>
 * <b>Messages</b> ({@code templateId}, direction, block layout):
 * <pre>
 *   HELLO        1  P->S  {@link HelloFlyweight}; var data: the reply channel
 *   HELLO_ACK    2  S->P  {@link ControlFlyweight}: id = generation id echoed, epoch = secondary's epoch
 *   REFUSE       3  S->P  {@link ControlFlyweight}: id = generation id echoed, code = RefusalCode wire code,
 *                         var data: the reason
 *   WRITE        4  P->S  {@link RequestFlyweight}; the data follows the block (length bytes)
 *   COW_DATA     5  P->S  {@link RequestFlyweight}; shared mode: checkpoint-time originals for the hidden disk
 *   ZEROES       6  P->S  {@link RequestFlyweight}
 *   DISCARD      7  P->S  {@link RequestFlyweight}
 *   FLUSH        8  P->S  {@link RequestFlyweight}; offset and length 0
 *   BARRIER      9  P->S  {@link ControlFlyweight}: id = correlation, epoch = primary epoch, value = timeout ns
 *                         (relative: the hosts' clocks are not compared)
 *   BARRIER_DONE 10 S->P  {@link ControlFlyweight}: id = correlation, epoch = secondary epoch, code = result
 *                         (0 or negated errno), var data: the reason
 *   ACK          11 S->P  {@link AckFlyweight}: the cookie of a request and its result
 *   HEARTBEAT    12 both  {@link ControlFlyweight}: epoch = sender's epoch
 *   GOODBYE      13 both  {@link ControlFlyweight}: code = 1 if failover, var data: the reason
 * </pre>
 * <b>Sequence</b>: the primary publishes HELLO on the data stream; the secondary answers on the reply channel with
 * HELLO_ACK (the link is up) or REFUSE with a named reason. Then the primary sends requests, each acknowledged by
 * exactly one ACK per message carrying the sink's result; a request longer than the part size travels as several
 * WRITE messages with the same cookie, one ACK each. BARRIER is ordered after every earlier request on the data
 * stream; the secondary runs its checkpoint only once every earlier request completed on its sink and was
 * acknowledged, and answers BARRIER_DONE after those ACKs on the reply stream. Both sides send HEARTBEAT every
 * interval the primary proposed and declare the peer lost after the timeout; either ends the link with GOODBYE.
 * <p>
 * <b>Versioning</b>: a receiver drops any message whose schema id or version it does not speak (named by
 * {@link MessageHeader#check}); a HELLO of another version is answered with REFUSE (version). To make that answer
 * possible in every version, HELLO's reply stream id, generation id and variable data (the reply channel, at
 * {@code blockLength}) are frozen. A larger {@code blockLength} than this version's is accepted
 * (fields appended by a compatible extension are skipped); a smaller one is a protocol error.
 */
public final class WireProtocol
{
    /** "US" for Understudy. */
    public static final int SCHEMA_ID = 0x5553;
    public static final int VERSION = 1;

    public static final int DATA_STREAM_ID = 1001;
    public static final int REPLY_STREAM_ID = 1002;
    public static final int CONTROL_STREAM_ID = 1003;

    public static final int HELLO = 1;
    public static final int HELLO_ACK = 2;
    public static final int REFUSE = 3;
    public static final int WRITE = 4;
    public static final int COW_DATA = 5;
    public static final int ZEROES = 6;
    public static final int DISCARD = 7;
    public static final int FLUSH = 8;
    public static final int BARRIER = 9;
    public static final int BARRIER_DONE = 10;
    public static final int ACK = 11;
    public static final int HEARTBEAT = 12;
    public static final int GOODBYE = 13;

    /** Longest reason or channel text carried in variable data, in bytes. */
    public static final int MAX_TEXT = 1024;

    private WireProtocol()
    {
    }

    /** @return the name of a template for logs and errors. */
    public static String templateName(final int templateId)
    {
        return switch (templateId)
        {
            case HELLO -> "HELLO";
            case HELLO_ACK -> "HELLO_ACK";
            case REFUSE -> "REFUSE";
            case WRITE -> "WRITE";
            case COW_DATA -> "COW_DATA";
            case ZEROES -> "ZEROES";
            case DISCARD -> "DISCARD";
            case FLUSH -> "FLUSH";
            case BARRIER -> "BARRIER";
            case BARRIER_DONE -> "BARRIER_DONE";
            case ACK -> "ACK";
            case HEARTBEAT -> "HEARTBEAT";
            case GOODBYE -> "GOODBYE";
            default -> "template " + templateId;
        };
    }

    /** @return the block length this version expects after the header of {@code templateId}, or -1 if unknown. */
    public static int blockLength(final int templateId)
    {
        return switch (templateId)
        {
            case HELLO -> HelloFlyweight.BLOCK_LENGTH;
            case HELLO_ACK, REFUSE, BARRIER, BARRIER_DONE, HEARTBEAT, GOODBYE -> ControlFlyweight.BLOCK_LENGTH;
            case WRITE, COW_DATA, ZEROES, DISCARD, FLUSH -> RequestFlyweight.BLOCK_LENGTH;
            case ACK -> AckFlyweight.BLOCK_LENGTH;
            default -> -1;
        };
    }
}
