package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.replication.ReplicationStage;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The disks of a sidecar as its control socket, its duty thread and its ready line see them. A sidecar of one disk
 * answers with that disk's replies as they are. A sidecar of several drives them together with the semantics of
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

    private final String role;
    private final ReplicaOptions replica;
    private final Map<String, SidecarDisk> disks = new LinkedHashMap<>();

    /**
     * @param role  "primary" or "secondary", as status and the ready line say it.
     * @param disks the sidecar's disks in config order; names are unique (the config file checked them).
     */
    DiskGroup(final String role, final ReplicaOptions replica, final List<? extends SidecarDisk> disks)
    {
        this.role = role;
        this.replica = replica;
        for (final SidecarDisk disk : disks)
        {
            this.disks.put(disk.name(), disk);
        }
    }

    /**
     * Runs one disk's step of starting the sidecar; in a sidecar of several disks a failure says which disk, then
     * the caller's cleanup releases everything opened so far.
     */
    static void perDisk(final ReplicaOptions replica, final String name, final Runnable step)
    {
        try
        {
            step.run();
        }
        catch (final UserException e)
        {
            if (!replica.isMultiDisk())
            {
                throw e;
            }
            throw new UserException("disk " + name + ": " + e.getMessage(), e);
        }
    }

    /**
     * Answers a control command: {@code status}, or {@code checkpoint}, {@code failover} and {@code stop} for the
     * disks the arguments select. A name, if given, must be one of the sidecar's disks, even on a sidecar of one:
     * a script meant for another sidecar must not act here.
     */
    ObjectNode execute(final String command, final JsonNode arguments, final DaemonCounters counters)
        throws ControlException
    {
        final long timeoutNanos = TimeUnit.MILLISECONDS.toNanos(
            StatusJson.timeoutMillis(arguments, replica.ioTimeoutMillis));
        final List<SidecarDisk> selected = select(arguments);
        if ("status".equals(command))
        {
            return status(counters);
        }
        final boolean failover = "failover".equals(command) ||
            "stop".equals(command) && arguments.path("failover").asBoolean(false);
        final Operation operation = switch (command)
        {
            case "checkpoint" -> disk -> disk.checkpoint(timeoutNanos);
            case "failover", "stop" -> failover ? disk -> disk.failover(timeoutNanos) : disk -> disk.stop(timeoutNanos);
            default -> throw new ControlException(ControlException.COMMAND_NOT_FOUND, "unknown command '" + command +
                "' (the " + role + " knows status, checkpoint, failover, stop, subscribe)");
        };
        return replica.isMultiDisk() ? apply(selected, operation) : operation.apply(selected.getFirst());
    }

    /** Every disk's duty cycle, in config order, on the sidecar's one duty thread. */
    int doWork()
    {
        int work = 0;
        for (final SidecarDisk disk : disks.values())
        {
            work += disk.doWork();
        }
        return work;
    }

    /** Prints the sidecar's ready line (and, with several disks, one line per disk first). */
    void printReady(final PrintWriter out, final Path control)
    {
        final String mode = replica.shared ? "shared" : "non-shared";
        if (replica.isMultiDisk())
        {
            for (final SidecarDisk disk : disks.values())
            {
                out.printf("understudy: disk %s ready (%d bytes): %s%n", disk.name(), disk.size(), disk.describe());
            }
            out.printf("understudy: %s ready (%s, %d disks, cluster %d): control socket %s%n", role, mode,
                disks.size(), replica.clusterSize, control);
        }
        else
        {
            final SidecarDisk disk = disks.values().iterator().next();
            out.printf("understudy: %s ready (%s, %d bytes, cluster %d): %s, control socket %s%n", role, mode,
                disk.size(), replica.clusterSize, disk.describe(), control);
        }
        out.flush();
    }

    /**
     * @return every disk, or the one {@code "disk"} names.
     * @throws ControlException if {@code "disk"} names none of them (the reply lists the known names).
     */
    private List<SidecarDisk> select(final JsonNode arguments) throws ControlException
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
    private static ObjectNode apply(final List<SidecarDisk> selected, final Operation operation)
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

    /**
     * @return the one disk's status; or, with several, the sidecar-wide fields, every disk's status under
     *         {@code "disks"} and the failover commit summed over them. Either way with the daemon's counters.
     */
    private ObjectNode status(final DaemonCounters counters)
    {
        if (!replica.isMultiDisk())
        {
            final ObjectNode status = disks.values().iterator().next().status();
            counters.toJson(status);
            return status;
        }
        final ObjectNode sidecar = ControlServer.JSON.createObjectNode()
            .put("role", role)
            .put("mode", replica.shared ? "shared" : "non-shared")
            .put("cluster-size", replica.clusterSize);
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
        counters.toJson(sidecar);
        return sidecar;
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
