package io.understudy.engine.link;

/**
 * What a primary announces when it links to a secondary, whatever the transport: enough for the secondary to
 * refuse a primary that would corrupt it (other disk size, cluster size, mode or epoch) and to time the
 * heartbeats.
 *
 * @param diskSize                bytes of the replicated disk.
 * @param clusterSize             COW and dirty-bitmap granularity.
 * @param shared                  shared-disk mode.
 * @param generationId            random per primary process: tells a restarted primary from a reconnect.
 * @param epoch                   the primary's epoch.
 * @param heartbeatIntervalMillis how often both sides send a heartbeat.
 * @param heartbeatTimeoutMillis  silence after which either side declares the other lost.
 */
public record Hello(
    long diskSize, int clusterSize, boolean shared, long generationId, long epoch, int heartbeatIntervalMillis,
    int heartbeatTimeoutMillis)
{
    /** @return why the heartbeat timing is unusable, or null if it is fine. */
    public String heartbeatProblem()
    {
        if (heartbeatIntervalMillis <= 0 || heartbeatTimeoutMillis <= heartbeatIntervalMillis)
        {
            return "heartbeat timeout (" + heartbeatTimeoutMillis + " ms) must exceed the interval (" +
                heartbeatIntervalMillis + " ms)";
        }
        return null;
    }
}
