package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.replication.ReplicationStage;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The disks of a sidecar of several, driven together through its control socket with the semantics of
 * {@link io.understudy.engine.replication.ReplicationGroup} (spec AX-21): an operation visits every disk in config
 * order whatever the others answered, because a checkpoint or a failover cannot be undone and stopping at the first
 * failure would leave a mix nobody can see. The reply names exactly which disks changed (stage or epoch moved) and
 * which failed, with each disk's own reply or error:
 * <pre>
 *   {"disks": {"colo0": {"ok": true, "changed": true, "epoch": 4, ...},
 *              "colo1": {"ok": false, "changed": false, "error": {"class": "GenericError", "desc": "..."}}},
 *    "changed": ["colo0"], "failed": ["colo1"]}
 * </pre>
 * An argument {@code "disk": NAME} narrows an operation to one disk; the reply keeps the same shape.
 */
final class DiskGroup
{
    /** One disk's part of an operation. */
    @FunctionalInterface
    interface Operation
    {
        ObjectNode apply(SidecarDisk disk) throws ControlException;
    }

    private final Map<String, SidecarDisk> disks = new LinkedHashMap<>();

    /** @param disks the sidecar's disks in config order; names are unique (the config file checked them). */
    DiskGroup(final List<? extends SidecarDisk> disks)
    {
        for (final SidecarDisk disk : disks)
        {
            this.disks.put(disk.name(), disk);
        }
    }

    /**
     * @return every disk, or the one {@code "disk"} names.
     * @throws ControlException if {@code "disk"} names none of them (the reply lists the known names).
     */
    List<SidecarDisk> select(final JsonNode arguments) throws ControlException
    {
        final JsonNode name = arguments.get("disk");
        if (name == null)
        {
            return List.copyOf(disks.values());
        }
        final SidecarDisk disk = name.isTextual() ? disks.get(name.asText()) : null;
        if (disk == null)
        {
            throw new ControlException(ControlException.INVALID_PARAMETER, "unknown disk " + name + " (this " +
                "sidecar has " + String.join(", ", disks.keySet()) + ")");
        }
        return List.of(disk);
    }

    /** Applies {@code operation} to every selected disk in order and reports each outcome; never stops early. */
    static ObjectNode apply(final List<SidecarDisk> selected, final Operation operation)
    {
        final ObjectNode reply = ControlServer.JSON.createObjectNode();
        final ObjectNode outcomes = reply.putObject("disks");
        final List<String> changed = new ArrayList<>();
        final List<String> failed = new ArrayList<>();
        for (final SidecarDisk disk : selected)
        {
            final ReplicationStage stage = disk.stage();
            final long epoch = disk.epoch();
            final ObjectNode outcome = ControlServer.JSON.createObjectNode();
            try
            {
                final ObjectNode result = operation.apply(disk);
                outcome.put("ok", true);
                putChanged(outcome, disk, stage, epoch, changed);
                outcome.setAll(result);
            }
            catch (final ControlException e)
            {
                failed(outcome, disk, stage, epoch, changed, failed, e.errorClass(), e.getMessage());
            }
            catch (final RuntimeException e)
            {
                failed(outcome, disk, stage, epoch, changed, failed, ControlException.GENERIC, String.valueOf(e));
            }
            outcomes.set(disk.name(), outcome);
        }
        final ArrayNode changedNames = reply.putArray("changed");
        changed.forEach(changedNames::add);
        final ArrayNode failedNames = reply.putArray("failed");
        failed.forEach(failedNames::add);
        return reply;
    }

    /** Adds every disk's status under {@code "disks"}, and the failover commit summed over them. */
    void status(final ObjectNode sidecar)
    {
        final ObjectNode statuses = sidecar.putObject("disks");
        long done = 0;
        long total = 0;
        for (final SidecarDisk disk : disks.values())
        {
            final ObjectNode status = disk.status();
            done += status.path("commit").path("done-bytes").asLong();
            total += status.path("commit").path("total-bytes").asLong();
            statuses.set(disk.name(), status);
        }
        if (statuses.findValue("commit") != null)
        {
            // What understudy failover shows as progress: the whole sidecar's commit.
            sidecar.putObject("commit").put("done-bytes", done).put("total-bytes", total);
        }
    }

    private static void failed(
        final ObjectNode outcome, final SidecarDisk disk, final ReplicationStage stage, final long epoch,
        final List<String> changed, final List<String> failed, final String errorClass, final String description)
    {
        outcome.put("ok", false);
        putChanged(outcome, disk, stage, epoch, changed);
        outcome.putObject("error").put("class", errorClass).put("desc", description);
        failed.add(disk.name());
    }

    private static void putChanged(
        final ObjectNode outcome, final SidecarDisk disk, final ReplicationStage stage, final long epoch,
        final List<String> changed)
    {
        final boolean moved = stage != disk.stage() || epoch != disk.epoch();
        outcome.put("changed", moved);
        if (moved)
        {
            changed.add(disk.name());
        }
    }
}
