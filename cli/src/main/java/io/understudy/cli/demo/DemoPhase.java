package io.understudy.cli.demo;

import io.understudy.engine.cow.CowCopy;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoEngines;
import io.understudy.engine.overlay.FileOverlayStorage;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ErrorLatch;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationSecondary;
import io.understudy.nbd.client.NbdClientDevice;
import io.understudy.nbd.server.NbdServer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Level;
import java.util.stream.Stream;

/**
 * One mode of the demo, start to verdict: a primary and a secondary in this process on temporary files, the
 * primary's disk exported over NBD on a unix socket, a guest writing to it, a checkpoint at every interval, a
 * primary crash while writes are in flight, failover on the secondary, and every byte of the survivor's disk
 * compared with the {@link DiskModel}.
 * <p>
 * <b>Checkpoints pause the guest</b>, as COLO stops the VM: the driver stops submitting, waits until the guest
 * has no write in flight, runs the primary's coordinated checkpoint (the secondary's part inside it) and, if it
 * completed, commits the epoch in the model. So every acknowledged write is unambiguously before or after a
 * checkpoint, and the model is exact. The primary's own hold of guest I/O during its checkpoint is exercised
 * anyway: the NBD server's requests are still passing through it.
 * <p>
 * <b>The crash</b> cuts the power of every device the primary writes to (its disk, its link; {@link PowerCut}),
 * then closes the primary's side, which waits for what the dead primary had already handed to the kernel or
 * the wire: a fence, without which a shared disk could still change under the failover commit (spec 1.3).
 */
final class DemoPhase
{
    static final int CLUSTER_SIZE = 64 << 10;

    private static final int QUEUE_DEPTH = 64;
    private static final String GUEST_EXPORT = "pvm";
    private static final String NBD_LOGGER = "io.understudy.nbd";
    private static final long IO_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final long CHECKPOINT_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(5);
    private static final long FAILOVER_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(60);

    private final DemoSettings settings;
    private final boolean shared;
    private final String mode;
    private final PrintWriter out;
    private final Progress progress;
    private final Teardown primarySide = new Teardown();
    private final Teardown secondarySide = new Teardown();
    /** The first error a duty-cycle agent hit; set on an agent thread, read by the driver. */
    private final AtomicReference<Throwable> agentError = new AtomicReference<>();
    private final Latencies checkpointLatencies;
    private final Latencies pauses;
    private long checkpointFailures;
    private String firstCheckpointFailure;

    DemoPhase(final DemoSettings settings, final boolean shared, final PrintWriter out, final Progress progress)
    {
        this.settings = settings;
        this.shared = shared;
        this.mode = shared ? "shared" : "non-shared";
        this.out = out;
        this.progress = progress;
        final int expected = (int)Math.min(1 << 20,
            settings.durationNanos() / settings.checkpointIntervalNanos() + 16);
        this.checkpointLatencies = new Latencies(expected);
        this.pauses = new Latencies(expected);
    }

    /** Runs the mode; never throws: a failure is a result that says why. Temporary files are removed. */
    PhaseResult run()
    {
        Path dir = null;
        PhaseResult result;
        try
        {
            dir = Files.createTempDirectory(settings.dir(), "understudy-demo-" + mode + "-");
            result = run(dir);
        }
        catch (final DemoFailure e)
        {
            result = PhaseResult.failed(mode, e.getMessage());
        }
        catch (final IOException | RuntimeException e)
        {
            result = PhaseResult.failed(mode, e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        finally
        {
            progress.clear();
        }
        final Exception primaryClose = primarySide.closeAll();
        final Exception secondaryClose = secondarySide.closeAll();
        final Exception close = primaryClose != null ? primaryClose : secondaryClose;
        if (close != null && result.ok())
        {
            result = result.withFailure("tearing down failed: " + close);
        }
        if (dir != null)
        {
            if (settings.keep())
            {
                line("files kept in %s", dir);
            }
            else
            {
                delete(dir);
            }
        }
        return result;
    }

    private PhaseResult run(final Path dir) throws IOException
    {
        final DiskModel model = new DiskModel(settings.size(), settings.seed());
        final Path primaryImage = dir.resolve(shared ? "shared.img" : "primary.img");
        final Path survivorImage = shared ? primaryImage : dir.resolve("secondary.img");
        ExpectedImage.write(model, primaryImage);
        if (!shared)
        {
            ExpectedImage.write(model, survivorImage);
        }

        final ReplicationSecondary secondary = startSecondary(dir, survivorImage);
        final DemoLink link = secondarySide.push(DemoLink.open(settings.transport(), secondary));
        final IoEngine primaryEngine = primarySide.push(IoEngines.create(settings.io()));
        final PowerCut primaryDisk = primarySide.push(
            new PowerCut(primaryEngine.open(primaryImage, FileOptions.readWrite())));
        final ReplicationPrimary primary = primarySide.push(new ReplicationPrimary(primaryDisk, link.forwarding(),
            shared, CLUSTER_SIZE, IO_TIMEOUT_NANOS, QUEUE_DEPTH));
        primarySide.push(DutyAgent.start("demo-primary-duty", primary::doWork, this::onAgentError));
        expectOk(primary.start(ReplicationMode.PRIMARY), "starting the primary");
        final Path socket = dir.resolve(GUEST_EXPORT + ".sock");
        final NbdServer export = primarySide.push(new NbdServer(new NbdServer.Context().exportName(GUEST_EXPORT)
            .description("understudy demo guest disk").device(primary)));
        export.bindUnix(socket);
        export.start();
        final GuestWorkload guest = primarySide.push(new GuestWorkload(
            NbdClientDevice.connect(UnixDomainSocketAddress.of(socket), GUEST_EXPORT), model, settings.seed()));
        line("primary and secondary up on %d MiB disks (%s), guest on nbd+unix:///%s?socket=%s, link %s, " +
            "checkpoint every %d ms", settings.size() >> 20, shared ? "one shared disk" : "one disk each",
            GUEST_EXPORT, socket, link.description(),
            TimeUnit.NANOSECONDS.toMillis(settings.checkpointIntervalNanos()));

        final long start = System.nanoTime();
        drive(guest, model, primary, primaryDisk, link, start);
        final long crashAt = System.nanoTime();
        final long writes = guest.writes();
        final long bytes = guest.bytes();
        final int inFlightAtCrash = guest.inFlight();
        primaryDisk.cut();
        link.sever();
        final Exception fenced;
        try (QuietLogs _ = QuietLogs.threshold(NBD_LOGGER, Level.OFF))
        {
            fenced = primarySide.closeAll();
        }
        if (fenced != null)
        {
            throw new DemoFailure("tearing down the crashed primary failed: " + fenced);
        }
        final int rolledBack = model.pendingBlocks();
        line("primary crashed %.1f s in, %d writes in flight (%d failed with it); %d blocks of the unfinished " +
            "epoch must be rolled back", (crashAt - start) / 1e9, inFlightAtCrash, guest.failedAfterCrash(),
            rolledBack);

        final long failoverStart = System.nanoTime();
        expectOk(secondary.failover(IO_TIMEOUT_NANOS), "failover on the secondary");
        final int committed = secondary.awaitFailover(FAILOVER_TIMEOUT_NANOS);
        final long failoverNanos = System.nanoTime() - failoverStart;
        if (committed < 0)
        {
            throw new DemoFailure("the failover commit failed: " + Errno.name(committed));
        }
        line("failover committed %d bytes of the overlays into the survivor's disk in %.2f ms",
            secondary.committedBytes(), failoverNanos / 1e6);
        final Throwable agentFailure = agentError.get();
        if (agentFailure != null)
        {
            throw new DemoFailure("a duty cycle failed: " + agentFailure);
        }

        final Verification verification = DiskVerifier.verify(model, survivorImage);
        line("survivor: %s", verification.describe());
        return new PhaseResult(mode, crashAt - start, writes, bytes, checkpointLatencies.count(), checkpointFailures,
            checkpointLatencies.percentile(50), checkpointLatencies.percentile(99), pauses.percentile(99),
            rolledBack, failoverNanos, secondary.committedBytes(), verification, null);
    }

    private ReplicationSecondary startSecondary(final Path dir, final Path image) throws IOException
    {
        final IoEngine engine = secondarySide.push(IoEngines.create(settings.io()));
        final FileOptions options = FileOptions.readWrite();
        final BlockDevice disk = secondarySide.push(engine.open(image, options));
        final FileOverlayStorage hidden = FileOverlayStorage.create(engine, dir.resolve("hidden.img"),
            settings.size(), options);
        final FileOverlayStorage active;
        try
        {
            active = FileOverlayStorage.create(engine, dir.resolve("active.img"), settings.size(), options);
        }
        catch (final IOException | RuntimeException e)
        {
            hidden.close();
            throw e;
        }
        final ReplicationSecondary secondary = secondarySide.push(
            new ReplicationSecondary(disk, hidden, active, CLUSTER_SIZE,
                ReplicationSecondary.defaultHiddenClusterSize(CLUSTER_SIZE, shared), shared, QUEUE_DEPTH,
                CowCopy.MEMORY));
        expectOk(secondary.start(ReplicationMode.SECONDARY), "starting the secondary");
        secondarySide.push(DutyAgent.start("demo-secondary-duty", secondary::doWork, this::onAgentError));
        return secondary;
    }

    /**
     * The driver's duty cycle until the crash: submit guest writes, and at every interval pause the guest, wait
     * for its writes in flight, checkpoint. Once the time is up, and at least half an interval after the last
     * checkpoint so there is an epoch to roll back, the primary's disk holds back what reaches it; the crash
     * comes once it holds a request, so a guest write is in flight for certain and cannot complete before the
     * power is cut, however late this thread runs again.
     */
    private void drive(
        final GuestWorkload guest, final DiskModel model, final ReplicationPrimary primary, final PowerCut disk,
        final DemoLink link, final long start)
    {
        final IdleStrategy idle = new BackoffIdleStrategy(100, 10, TimeUnit.MICROSECONDS.toNanos(1),
            TimeUnit.MICROSECONDS.toNanos(100));
        final long interval = settings.checkpointIntervalNanos();
        final long end = start + settings.durationNanos();
        long nextCheckpoint = start + interval;
        long lastCheckpoint = start;
        long pauseStart = 0;
        boolean pausing = false;
        while (true)
        {
            final long now = System.nanoTime();
            final String failure = guest.failure();
            if (failure != null)
            {
                throw new DemoFailure(failure + degradation(primary));
            }
            int work = 0;
            if (pausing)
            {
                if (guest.inFlight() == 0)
                {
                    checkpoint(model, primary, link, pauseStart);
                    pausing = false;
                    lastCheckpoint = System.nanoTime();
                    nextCheckpoint = pauseStart + interval;
                    work++;
                }
            }
            else if (now - end >= 0)
            {
                if (now - lastCheckpoint >= interval / 2)
                {
                    if (disk.heldRequests() > 0)
                    {
                        guest.crash();
                        return;
                    }
                    disk.hold();
                }
                work += guest.submit();
            }
            else if (now - nextCheckpoint >= 0)
            {
                pausing = true;
                pauseStart = now;
                work++;
            }
            else
            {
                work += guest.submit();
            }
            progress.update(mode, now - start, settings.durationNanos(), guest.bytes(), checkpointLatencies.count());
            idle.idle(work);
        }
    }

    /** One coordinated checkpoint with the guest paused; the model advances only if it completed. */
    private void checkpoint(
        final DiskModel model, final ReplicationPrimary primary, final DemoLink link, final long pauseStart)
    {
        final CheckpointReport report = primary.checkpoint(CHECKPOINT_TIMEOUT_NANOS, link.peerCheckpoint());
        if (report.ok())
        {
            // The guest has nothing in flight (acquired through its counter): its acknowledgements are all in.
            model.commitEpoch();
            checkpointLatencies.record(report.totalNanos());
            pauses.record(System.nanoTime() - pauseStart);
        }
        else
        {
            checkpointFailures++;
            if (firstCheckpointFailure == null)
            {
                firstCheckpointFailure = report.toString();
                line("%s", firstCheckpointFailure);
            }
        }
    }

    /** @return why the primary's pair is degraded, as a suffix for a failure message, or "". */
    private static String degradation(final ReplicationPrimary primary)
    {
        final ErrorLatch.LatchedError error = primary.latchedError();
        return error == null ? "" : " (the primary's latched error: " + Errno.name(error.errno()) + ": " +
            error.reason() + ")";
    }

    private static void expectOk(final ControlResult result, final String what)
    {
        if (!result.ok())
        {
            throw new DemoFailure(what + " failed: " + result.reason());
        }
    }

    private void onAgentError(final Throwable error)
    {
        agentError.compareAndSet(null, error);
    }

    private void line(final String format, final Object... args)
    {
        progress.clear();
        out.printf("%-10s " + format + "%n", prepend(mode + ":", args));
        out.flush();
    }

    private static Object[] prepend(final Object first, final Object[] rest)
    {
        final Object[] all = new Object[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    private void delete(final Path dir)
    {
        try (Stream<Path> paths = Files.walk(dir))
        {
            for (final Path path : paths.sorted(Comparator.reverseOrder()).toList())
            {
                Files.deleteIfExists(path);
            }
        }
        catch (final IOException | UncheckedIOException e)
        {
            line("could not remove %s: %s", dir, e.getMessage());
        }
    }

    /** A run that cannot go on, with the reason for the operator. */
    private static final class DemoFailure extends RuntimeException
    {
        DemoFailure(final String message)
        {
            super(message);
        }
    }
}
