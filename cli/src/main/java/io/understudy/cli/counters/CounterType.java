package io.understudy.cli.counters;

import io.understudy.engine.replication.ReplicationState;

/**
 * The counters a daemon publishes, by the type id stored in each counter's metadata (part of the file format:
 * ids are never reused) and the name used as the counter's label and as the key of {@code stat --json}. Counters
 * of an NBD export carry the export's name after a colon ({@code nbd-in-flight:pvm}); in a sidecar of several
 * disks every counter of one disk carries the disk's name after {@value #DISK_SEPARATOR} ({@code epoch@colo1},
 * {@code nbd-in-flight:pvm@colo1}), so one file holds every disk's figures.
 * <p>
 * Two counters hold codes rather than quantities: {@link #STATE} (a {@link ReplicationState}, by declaration
 * order: none, running, checkpointing, failover, failover-failed, degraded, done) and {@link #PEER_LINK} (none,
 * foreign, up, lost, peer-goodbye, closed); {@link #render} turns them back into the labels {@code status} uses.
 */
public enum CounterType
{
    STATE(1, "state"),
    EPOCH(2, "epoch"),
    ERRORS(3, "errors"),
    CHECKPOINTS(4, "checkpoints"),
    CHECKPOINT_LAST_US(5, "checkpoint-last-us"),
    CHECKPOINT_P50_US(6, "checkpoint-p50-us"),
    CHECKPOINT_P99_US(7, "checkpoint-p99-us"),
    PEER_LINK(8, "peer-link"),
    FORWARDED_OPS(10, "forwarded-ops"),
    FORWARDED_BYTES(11, "forwarded-bytes"),
    FORWARD_TIMEOUTS(12, "forward-timeouts"),
    UNACKNOWLEDGED_BYTES(13, "unacknowledged-bytes"),
    DIRTY_CLUSTERS(14, "dirty-clusters"),
    COW_COPIES(15, "cow-copies"),
    HIDDEN_CLUSTERS(16, "hidden-clusters"),
    ACTIVE_CLUSTERS(17, "active-clusters"),
    COMMITTED_BYTES(18, "committed-bytes"),
    COMMIT_TOTAL_BYTES(19, "commit-total-bytes"),
    /** Of {@link #COW_COPIES}, the clusters the kernel copied ({@code --cow-copy kernel}, where it can). */
    COW_COPIES_OFFLOADED(20, "cow-copies-offloaded"),
    NBD_CONNECTIONS(30, "nbd-connections"),
    NBD_IN_FLIGHT(31, "nbd-in-flight"),
    NBD_REQUESTS(32, "nbd-requests"),
    NBD_READ_BYTES(33, "nbd-read-bytes"),
    NBD_WRITE_BYTES(34, "nbd-write-bytes"),
    NBD_ERROR_REPLIES(35, "nbd-error-replies");

    /** Peer-link codes of {@link #PEER_LINK}, by value. */
    private static final String[] PEER_LINK_LABELS = {"none", "foreign", "up", "lost", "peer-goodbye", "closed"};

    /** Separates a counter's label from the name of the disk it belongs to in a sidecar of several disks. */
    public static final char DISK_SEPARATOR = '@';

    private final int typeId;
    private final String label;

    CounterType(final int typeId, final String label)
    {
        this.typeId = typeId;
        this.label = label;
    }

    public int typeId()
    {
        return typeId;
    }

    public String label()
    {
        return label;
    }

    /** @return the counter's label for one NBD export. */
    public String label(final String export)
    {
        return label + ":" + export;
    }

    /** @return {@code label} of the disk {@code disk}, or {@code label} itself for a sidecar's only disk (null). */
    public static String forDisk(final String label, final String disk)
    {
        return disk == null ? label : label + DISK_SEPARATOR + disk;
    }

    /** @return the type with this id, or null for an id this version does not know. */
    public static CounterType of(final int typeId)
    {
        for (final CounterType type : values())
        {
            if (type.typeId == typeId)
            {
                return type;
            }
        }
        return null;
    }

    /** @return the code {@link #PEER_LINK} stores for a peer-link label of {@code status}. */
    public static long peerLinkCode(final String label)
    {
        for (int i = 0; i < PEER_LINK_LABELS.length; i++)
        {
            if (PEER_LINK_LABELS[i].equals(label))
            {
                return i;
            }
        }
        return 0;
    }

    /** @return the value as an operator reads it: a label for the coded counters, else the number. */
    public String render(final long value)
    {
        return switch (this)
        {
            case STATE -> value >= 0 && value < ReplicationState.values().length ?
                ReplicationState.values()[(int)value].label() : "unknown(" + value + ")";
            case PEER_LINK -> value >= 0 && value < PEER_LINK_LABELS.length ?
                PEER_LINK_LABELS[(int)value] : "unknown(" + value + ")";
            default -> Long.toString(value);
        };
    }

    /** @return true if {@link #render} yields a label rather than a number. */
    public boolean isCode()
    {
        return this == STATE || this == PEER_LINK;
    }
}
