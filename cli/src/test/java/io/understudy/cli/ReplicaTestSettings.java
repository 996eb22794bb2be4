package io.understudy.cli;

import java.time.Duration;

/**
 * Settings every process-level replication test shares, so that the suites cannot drift apart: small disks,
 * and heartbeat deadlines with slack for JIT and GC pauses on a loaded 2-core CI machine.
 */
final class ReplicaTestSettings
{
    static final Duration STARTUP = Duration.ofSeconds(60);
    static final Duration STOP = Duration.ofSeconds(30);
    static final int MIB = 1 << 20;
    /** Disk size: 16 MiB, enough for two 8 MiB halves and several 64 KiB clusters in each. */
    static final int SIZE = 16 * MIB;
    static final int HEARTBEAT_MS = 200;
    static final int HEARTBEAT_TIMEOUT_MS = 1500;

    private ReplicaTestSettings()
    {
    }
}
