package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.Errno;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ErrorLatch;
import io.understudy.engine.replication.ReplicatedDisk;

/** The JSON shapes the daemons answer with (the {@code status --json} contract lives here). */
final class StatusJson
{
    private StatusJson()
    {
    }

    /** role, mode, state, epoch, error (null or {errno, reason}), peer {link, ...}. */
    static ObjectNode status(
        final String role, final boolean shared, final ReplicatedDisk disk, final ErrorLatch.LatchedError error,
        final PeerStatus peer)
    {
        final ObjectNode node = ControlServer.JSON.createObjectNode()
            .put("role", role)
            .put("mode", shared ? "shared" : "non-shared")
            .put("state", disk.state().label())
            .put("epoch", disk.epoch());
        if (error == null)
        {
            node.putNull("error");
        }
        else
        {
            node.putObject("error").put("errno", Errno.name(error.errno())).put("reason", error.reason());
        }
        peer.toJson(node.putObject("peer"));
        return node;
    }

    static ObjectNode checkpoint(final CheckpointReport report) throws ControlException
    {
        if (!report.ok())
        {
            throw new ControlException(ControlException.GENERIC, "checkpoint failed: " + Errno.name(report.result()) +
                ": " + report.reason() + " (epoch stays " + report.epoch() + ")");
        }
        return ControlServer.JSON.createObjectNode()
            .put("epoch", report.epoch())
            .put("ignored", "ignored".equals(report.reason()))
            .put("drain-us", report.drainNanos() / 1000)
            .put("flush-us", report.flushNanos() / 1000)
            .put("reset-us", report.resetNanos() / 1000)
            .put("total-us", report.totalNanos() / 1000);
    }

    static ObjectNode control(final String what, final ControlResult result) throws ControlException
    {
        if (!result.ok())
        {
            throw new ControlException(ControlException.GENERIC, what + " failed: " + Errno.name(result.result()) +
                ": " + result.reason());
        }
        return ControlServer.JSON.createObjectNode().put("ignored", result == ControlResult.IGNORED);
    }

    static long timeoutMillis(final JsonNode arguments, final long defaultMillis)
        throws ControlException
    {
        final JsonNode value = arguments.get("timeout-ms");
        if (value == null)
        {
            return defaultMillis;
        }
        if (!value.canConvertToLong() || value.asLong() <= 0)
        {
            throw new ControlException(ControlException.INVALID_PARAMETER, "timeout-ms must be a positive integer");
        }
        return value.asLong();
    }
}
