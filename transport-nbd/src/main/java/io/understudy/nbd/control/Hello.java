package io.understudy.nbd.control;

import java.nio.ByteBuffer;

/**
 * What the primary announces in HELLO (see {@link ControlProtocol}): enough for the secondary to refuse a
 * primary that would corrupt it (other disk size, cluster size or mode) and to time the heartbeats.
 *
 * @param diskSize              bytes of the replicated disk.
 * @param clusterSize           COW and dirty-bitmap granularity.
 * @param shared                shared-disk mode.
 * @param generationId          random per primary process: tells a restarted primary from a reconnect.
 * @param epoch                 the primary's epoch.
 * @param heartbeatIntervalMillis how often both sides send HEARTBEAT.
 * @param heartbeatTimeoutMillis  silence after which either side declares the other lost.
 */
public record Hello(
    long diskSize, int clusterSize, boolean shared, long generationId, long epoch, int heartbeatIntervalMillis,
    int heartbeatTimeoutMillis)
{
    static final int LENGTH = 8 + 4 + 1 + 8 + 8 + 4 + 4;

    void encode(final ByteBuffer buffer)
    {
        buffer.putLong(diskSize).putInt(clusterSize).put((byte)(shared ? 1 : 0)).putLong(generationId).putLong(epoch)
            .putInt(heartbeatIntervalMillis).putInt(heartbeatTimeoutMillis);
    }

    static Hello decode(final ByteBuffer buffer)
    {
        return new Hello(buffer.getLong(), buffer.getInt(), buffer.get() != 0, buffer.getLong(), buffer.getLong(),
            buffer.getInt(), buffer.getInt());
    }
}
