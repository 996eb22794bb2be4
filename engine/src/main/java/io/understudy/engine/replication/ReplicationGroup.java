package io.understudy.engine.replication;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The replicated disks of one sidecar, driven together (spec 2.1 {@code replication_*_all}, AX-21). QEMU stops
 * at the first failing disk and leaves a mix without saying which disks changed. A checkpoint cannot be undone
 * (overlays were emptied), so all-or-nothing is not possible in general; instead every operation is applied to
 * every disk, in order, whatever the others answered, and the outcome names exactly which disks changed (stage
 * or epoch moved) and which failed, so the operator or the control protocol can act per disk.
 */
public final class ReplicationGroup
{
    /**
     * @param name    the disk's name in the group.
     * @param result  0 or a negated errno.
     * @param reason  empty, "ignored", or why it failed.
     * @param changed true if the operation moved the disk's stage or epoch.
     */
    public record DiskOutcome(String name, int result, String reason, boolean changed)
    {
    }

    /** Per-disk outcomes in group order. */
    public record Outcome(List<DiskOutcome> disks)
    {
        public boolean ok()
        {
            return disks.stream().allMatch(disk -> disk.result() >= 0);
        }

        public List<String> changed()
        {
            return disks.stream().filter(DiskOutcome::changed).map(DiskOutcome::name).toList();
        }

        public List<String> failed()
        {
            return disks.stream().filter(disk -> disk.result() < 0).map(DiskOutcome::name).toList();
        }
    }

    private final Map<String, ReplicatedDisk> disks;

    /** @param disks the disks by name, in the order operations visit them (copied). */
    public ReplicationGroup(final Map<String, ? extends ReplicatedDisk> disks)
    {
        this.disks = Collections.unmodifiableMap(new LinkedHashMap<>(disks));
    }

    public Map<String, ReplicatedDisk> disks()
    {
        return disks;
    }

    public synchronized Outcome start(final ReplicationMode mode)
    {
        return control(disk -> disk.start(mode));
    }

    public synchronized Outcome checkpoint(final long timeoutNanos)
    {
        final List<DiskOutcome> outcomes = new ArrayList<>(disks.size());
        for (final Map.Entry<String, ReplicatedDisk> entry : disks.entrySet())
        {
            final ReplicatedDisk disk = entry.getValue();
            final ReplicationStage stage = disk.stage();
            final long epoch = disk.epoch();
            final CheckpointReport report = disk.checkpoint(timeoutNanos);
            outcomes.add(new DiskOutcome(entry.getKey(), report.result(), report.reason(),
                stage != disk.stage() || epoch != disk.epoch()));
        }
        return new Outcome(List.copyOf(outcomes));
    }

    public synchronized Outcome stop(final boolean failover, final long timeoutNanos)
    {
        return control(disk -> disk.stop(failover, timeoutNanos));
    }

    public Outcome getError()
    {
        return control(ReplicatedDisk::getError);
    }

    private Outcome control(final Function<ReplicatedDisk, ControlResult> operation)
    {
        final List<DiskOutcome> outcomes = new ArrayList<>(disks.size());
        for (final Map.Entry<String, ReplicatedDisk> entry : disks.entrySet())
        {
            final ReplicatedDisk disk = entry.getValue();
            final ReplicationStage stage = disk.stage();
            final long epoch = disk.epoch();
            final ControlResult result = operation.apply(disk);
            outcomes.add(new DiskOutcome(entry.getKey(), result.result(), result.reason(),
                stage != disk.stage() || epoch != disk.epoch()));
        }
        return new Outcome(List.copyOf(outcomes));
    }
}
