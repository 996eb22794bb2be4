package io.understudy.engine.replication;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static io.understudy.engine.replication.ReplicationFixture.CLUSTER;
import static io.understudy.engine.replication.ReplicationFixture.QUEUE_DEPTH;
import static io.understudy.engine.replication.ReplicationFixture.SECOND;
import static io.understudy.engine.replication.ReplicationFixture.SIZE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AX-21: operations over several disks visit every disk and report exactly which ones changed. */
class ReplicationGroupTest
{
    @TempDir
    Path dir;

    @Test
    void ax21_multiDiskOperationsReportExactlyWhichDisksChanged() throws Exception
    {
        try (ReplicationFixture fx = new ReplicationFixture(dir))
        {
            final Map<String, ReplicationSecondary> disks = new LinkedHashMap<>();
            for (final String name : List.of("disk0", "disk1", "disk2"))
            {
                final BlockDevice s = fx.disk(name + ".raw", 0x11);
                // disk1's hidden overlay is too short: its start must fail, the others must not be held back
                final long hiddenSize = name.equals("disk1") ? SIZE - CLUSTER : SIZE;
                final ReplicationSecondary secondary = fx.owned(new ReplicationSecondary(s,
                    fx.storage(name + ".h", hiddenSize), fx.storage(name + ".a", SIZE), CLUSTER, false, QUEUE_DEPTH));
                fx.dutyCycle(secondary::doWork);
                disks.put(name, secondary);
            }
            final ReplicationGroup group = new ReplicationGroup(disks);

            final ReplicationGroup.Outcome started = group.start(ReplicationMode.SECONDARY);
            assertFalse(started.ok());
            assertEquals(List.of("disk0", "disk2"), started.changed());
            assertEquals(List.of("disk1"), started.failed());
            assertEquals(-Errno.EINVAL, started.disks().get(1).result());
            assertSame(ReplicationStage.NONE, disks.get("disk1").stage());

            fx.fill(disks.get("disk2").sink(), 0, CLUSTER, 0x22);
            final ReplicationGroup.Outcome checkpointed = group.checkpoint(SECOND);
            assertEquals(List.of("disk0", "disk2"), checkpointed.changed());
            assertEquals(List.of("disk1"), checkpointed.failed());
            assertEquals(1, disks.get("disk0").epoch());
            assertEquals(1, disks.get("disk2").epoch());
            fx.assertBytes(disks.get("disk2").view(), 0, CLUSTER, 0x22);

            final ReplicationGroup.Outcome errors = group.getError();
            assertEquals(List.of("disk1"), errors.failed(), "only the disk that is not running");
            assertTrue(errors.changed().isEmpty());

            final ReplicationGroup.Outcome stopped = group.stop(false, SECOND);
            assertEquals(List.of("disk0", "disk2"), stopped.changed());
            assertEquals(List.of("disk1"), stopped.failed());
            assertSame(ReplicationStage.DONE, disks.get("disk0").stage());
            assertSame(ReplicationStage.DONE, disks.get("disk2").stage());
        }
    }
}
