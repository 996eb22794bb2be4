package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.engine.device.Errno;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ReplicationState;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.CompositeAgent;
import org.agrona.concurrent.SleepingMillisIdleStrategy;

import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Turns a replication daemon's status into {@link ControlEvents}: an agent compares the daemon's {@code status}
 * object every {@link #POLL_MILLIS} with the last one it saw and emits STATE_CHANGE, REPLICATION_ERROR, PEER_UP,
 * PEER_LOST, PEER_GOODBYE and FAILOVER_PROGRESS for what changed. Watching the status the operator already gets,
 * rather than hooking every place in the engine and the links that changes it, keeps the daemons' wiring to a
 * few lines and the events consistent with {@code status} by construction.
 * <p>
 * What polling cannot see is wrapped instead: {@link #checkpoint} (far shorter than a poll; its durations exist
 * only in the report) and {@link #failover} (on the primary it passes through FAILOVER at once). The wrappers
 * emit under the same lock as the agent, so a subscriber sees one consistent sequence, e.g. STATE_CHANGE
 * running to checkpointing, CHECKPOINT, STATE_CHANGE checkpointing to running with the new epoch.
 */
final class StatusWatch implements Agent
{
    /** Status poll period: state changes reach subscribers within it; a poll builds one status object. */
    static final long POLL_MILLIS = 20;

    /** FAILOVER_PROGRESS at most this often: a commit of gigabytes must not flood the subscribers. */
    static final long PROGRESS_INTERVAL_MILLIS = 250;

    private static final System.Logger LOG = System.getLogger("io.understudy.cli.events");
    private static final String CHECKPOINTING = ReplicationState.CHECKPOINTING.label();

    /** A control command that answers with a {@code return} object or fails with an {@code error}. */
    @FunctionalInterface
    interface Command
    {
        ObjectNode run() throws ControlException;
    }

    private final ControlEvents events;
    private final Supplier<ObjectNode> status;
    private final String disk;

    // Guarded by this: the agent and the wrappers (control threads) observe, emit and report one at a time.
    private String state;
    private long epoch;
    private JsonNode error = NullNode.getInstance();
    private String peerLink;
    private long committedBytes = -1;
    private long nextProgressNanos;
    private int checkpointsRunning;
    private String lastFailure = "";

    /**
     * @param status the status of one disk, callable from any thread while the daemon runs.
     * @param disk   the disk's name in a sidecar of several disks, added to every event's data; null for a
     *               sidecar's only disk, whose events stay as they always were.
     */
    StatusWatch(final ControlEvents events, final Supplier<ObjectNode> status, final String disk)
    {
        this.events = events;
        this.status = status;
        this.disk = disk;
    }

    /**
     * Starts polling every disk's watch on one thread (one poll period for all); close the runner before the
     * daemon's disks.
     */
    static AgentRunner start(final List<StatusWatch> watches)
    {
        final StatusWatch first = watches.getFirst();
        final Agent agent = watches.size() == 1 ? first : new CompositeAgent(watches);
        final AgentRunner runner = new AgentRunner(new SleepingMillisIdleStrategy(POLL_MILLIS), first::onError, null,
            agent);
        AgentRunner.startOnThread(runner, task -> Thread.ofPlatform().daemon(true).unstarted(task));
        return runner;
    }

    @Override
    public String roleName()
    {
        return disk == null ? "status-watch" : "status-watch-" + disk;
    }

    @Override
    public int doWork()
    {
        return observe();
    }

    /**
     * Runs a checkpoint, bracketed by STATE_CHANGE to and from {@code checkpointing} when the disk was running or
     * degraded (in any other state a checkpoint is ignored or refused and changes nothing), and followed by
     * CHECKPOINT or CHECKPOINT_FAILED with the report.
     */
    CheckpointReport checkpoint(final Supplier<CheckpointReport> checkpoint)
    {
        final boolean pinned;
        synchronized (this)
        {
            observe();
            pinned = ReplicationState.RUNNING.label().equals(state) ||
                ReplicationState.DEGRADED.label().equals(state);
            if (pinned)
            {
                checkpointsRunning++;
                stateChange(CHECKPOINTING);
            }
        }
        CheckpointReport report = null;
        try
        {
            report = checkpoint.get();
            return report;
        }
        finally
        {
            synchronized (this)
            {
                if (pinned)
                {
                    checkpointsRunning--;
                }
                if (report != null)
                {
                    emitCheckpoint(report);
                }
                observe();
            }
        }
    }

    /** Runs a failover; FAILOVER_DONE carries its {@code return} object, FAILOVER_FAILED its error. */
    ObjectNode failover(final Command failover) throws ControlException
    {
        try
        {
            final ObjectNode result = failover.run();
            synchronized (this)
            {
                observe();
                emit("FAILOVER_DONE", result.deepCopy());
            }
            return result;
        }
        catch (final ControlException e)
        {
            synchronized (this)
            {
                observe();
                emit("FAILOVER_FAILED", ControlServer.JSON.createObjectNode()
                    .put("class", e.errorClass()).put("desc", e.getMessage()));
            }
            throw e;
        }
    }

    /**
     * Compares the status with the last one seen; the first one is the baseline and emits nothing. Never throws:
     * the wrappers call it around commands, whose outcome must not depend on the events.
     */
    private synchronized int observe()
    {
        final ObjectNode now;
        try
        {
            now = status.get();
        }
        catch (final RuntimeException e)
        {
            onError(e);
            return 0;
        }
        epoch = now.path("epoch").asLong();
        final String newState = checkpointsRunning > 0 ? CHECKPOINTING : now.path("state").asText();
        final JsonNode newError = now.path("error");
        final JsonNode peer = now.path("peer");
        final String newLink = peer.path("link").asText();
        if (state == null)
        {
            state = newState;
            error = newError;
            peerLink = newLink;
            return 0;
        }
        int emitted = 0;
        if (!newError.equals(error))
        {
            error = newError;
            if (!newError.isNull())
            {
                emit("REPLICATION_ERROR", newError.deepCopy());
                emitted++;
            }
        }
        if (!newLink.equals(peerLink))
        {
            peerLink = newLink;
            emitted += peerEvent(newLink, peer);
        }
        if (!newState.equals(state))
        {
            stateChange(newState);
            emitted++;
        }
        return emitted + failoverProgress(now.path("commit"));
    }

    private int peerEvent(final String link, final JsonNode peer)
    {
        final String event = switch (link)
        {
            case "up" -> "PEER_UP";
            case "lost" -> "PEER_LOST";
            case "peer-goodbye" -> "PEER_GOODBYE";
            default -> null;
        };
        if (event == null)
        {
            return 0;
        }
        emit(event, ControlServer.JSON.createObjectNode()
            .put("address", peer.path("address").asText())
            .put("reason", peer.path("reason").asText()));
        return 1;
    }

    /** While the secondary commits A and H: done and total bytes, when they moved, rate-limited. */
    private int failoverProgress(final JsonNode commit)
    {
        if (!ReplicationState.FAILOVER.label().equals(state) || commit.isMissingNode())
        {
            return 0;
        }
        final long done = commit.path("done-bytes").asLong();
        final long total = commit.path("total-bytes").asLong();
        final long nowNanos = System.nanoTime();
        // Total 0: the commit has not sized its work yet, or there is none; either way nothing to report.
        if (total == 0 || done == committedBytes || nowNanos - nextProgressNanos < 0)
        {
            return 0;
        }
        committedBytes = done;
        nextProgressNanos = nowNanos + TimeUnit.MILLISECONDS.toNanos(PROGRESS_INTERVAL_MILLIS);
        emit("FAILOVER_PROGRESS", ControlServer.JSON.createObjectNode()
            .put("done-bytes", done)
            .put("total-bytes", total));
        return 1;
    }

    /** Every event goes out here: a disk of a sidecar of several disks is named in its events' data. */
    private void emit(final String name, final ObjectNode data)
    {
        if (disk != null)
        {
            data.put("disk", disk);
        }
        events.emit(name, data);
    }

    private void stateChange(final String newState)
    {
        emit("STATE_CHANGE", ControlServer.JSON.createObjectNode()
            .put("old", state)
            .put("new", newState)
            .put("epoch", epoch));
        state = newState;
    }

    private void emitCheckpoint(final CheckpointReport report)
    {
        final ObjectNode data = ControlServer.JSON.createObjectNode().put("epoch", report.epoch());
        if (report.ok())
        {
            emit("CHECKPOINT", data
                .put("ignored", "ignored".equals(report.reason()))
                .put("drain-us", report.drainNanos() / 1000)
                .put("flush-us", report.flushNanos() / 1000)
                .put("reset-us", report.resetNanos() / 1000)
                .put("total-us", report.totalNanos() / 1000));
        }
        else
        {
            emit("CHECKPOINT_FAILED", data
                .put("errno", Errno.name(report.result()))
                .put("reason", report.reason())
                .put("total-us", report.totalNanos() / 1000));
        }
    }

    /** Said once per distinct failure: the agent retries every poll and must not flood the log. */
    private synchronized void onError(final Throwable error)
    {
        final String failure = String.valueOf(error);
        if (!failure.equals(lastFailure))
        {
            lastFailure = failure;
            LOG.log(System.Logger.Level.WARNING, "status watch: " + failure + "; events stop until it recovers");
        }
    }
}
