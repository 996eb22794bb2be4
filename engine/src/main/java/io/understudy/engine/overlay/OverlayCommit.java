package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Copies everything a chain of overlays holds down into the device at its bottom (failover: A and H into S),
 * top layer winning.
 * <p>
 * The union of the layers' allocated clusters is walked in offset order; each run (at most one buffer long)
 * is read <em>through the top overlay</em>, which by construction returns the topmost layer's bytes for every
 * cluster, and written to the bottom device, then the bottom device is flushed. Since only allocated ranges
 * are read, no read falls through to the device being written. Memory is bounded by the one caller-supplied
 * buffer; only one sub-request is in flight. The overlays are left untouched, so a commit that was
 * interrupted (error, crash, cancel) is simply run again: it copies the same final bytes.
 * <p>
 * Precondition: nobody writes the chain while the commit runs (the replication layer stops the SVM view's
 * writers or routes them to the bottom device). One instance runs one commit at a time.
 */
public final class OverlayCommit implements IoCompletion
{
    /** Told after each run is written, from the completing thread. */
    @FunctionalInterface
    public interface ProgressListener
    {
        void onProgress(long committedBytes, long totalBytes);
    }

    private static final int IDLE = 0;
    private static final int SUBMITTING = 1;
    private static final int COMPLETED_EARLY = 2;
    private static final int AWAITING = 3;

    private static final int STAGE_READ = 1;
    private static final int STAGE_WRITE = 2;
    private static final int STAGE_FLUSH = 3;

    private final OverlayDevice top;
    private final OverlayDevice[] layers;
    private final BlockDevice bottom;
    private final MemorySegment buffer;
    private final ProgressListener listener;
    private final AtomicInteger guard = new AtomicInteger();

    private IoCompletion completion;
    private long cookie;
    private long position;
    private long runStart;
    private long runEnd;
    private long total;
    private long committed;
    private int stage;
    private int ioResult;

    /**
     * @param top      the top overlay of the chain; layers are found through {@link OverlayDevice#backing()}.
     * @param buffer   staging buffer; its size bounds the memory used and the length of each copy.
     * @param listener progress callback.
     */
    public OverlayCommit(final OverlayDevice top, final MemorySegment buffer, final ProgressListener listener)
    {
        final List<OverlayDevice> chain = new ArrayList<>();
        BlockDevice device = top;
        while (device instanceof final OverlayDevice overlay)
        {
            chain.add(overlay);
            device = overlay.backing();
        }
        if (buffer.byteSize() < OverlayDevice.MAX_CLUSTER_SIZE)
        {
            throw new IllegalArgumentException("buffer must hold at least one 1 MiB cluster: " + buffer.byteSize());
        }
        this.top = top;
        this.layers = chain.toArray(new OverlayDevice[0]);
        this.bottom = device;
        this.buffer = buffer;
        this.listener = listener;
    }

    public BlockDevice bottom()
    {
        return bottom;
    }

    /** @return bytes the chain holds in total (union of the layers' clusters); visits only dirty words. */
    public long pendingBytes()
    {
        long bytes = 0;
        long offset = nextHeld(0);
        while (offset >= 0)
        {
            final long end = heldRunEnd(offset);
            bytes += end - offset;
            offset = nextHeld(end);
        }
        return bytes;
    }

    /** Starts the commit; {@code completion} gets 0 once everything is written and flushed, or an error. */
    public void start(final IoCompletion completion, final long cookie)
    {
        this.completion = completion;
        this.cookie = cookie;
        this.total = pendingBytes();
        this.committed = 0;
        this.position = 0;
        this.stage = 0;
        run();
    }

    @Override
    public void onComplete(final long ignored, final int result)
    {
        ioResult = result;
        if (guard.compareAndSet(SUBMITTING, COMPLETED_EARLY))
        {
            return;
        }
        if (completed())
        {
            run();
        }
    }

    private void run()
    {
        while (true)
        {
            if (stage == 0 && !plan())
            {
                return;
            }
            guard.set(SUBMITTING);
            final int length = (int)(runEnd - runStart);
            final boolean accepted = switch (stage)
            {
                case STAGE_READ -> top.read(runStart, buffer, length, this, 0);
                case STAGE_WRITE -> bottom.write(runStart, buffer, length, 0, this, 0);
                default -> bottom.flush(this, 0);
            };
            if (!accepted)
            {
                // The devices below are saturated; there is no one to wake us, so fail cleanly: a commit is
                // idempotent and the caller retries it.
                guard.set(IDLE);
                finish(-Errno.EAGAIN);
                return;
            }
            if (guard.compareAndSet(SUBMITTING, AWAITING))
            {
                return;
            }
            guard.set(IDLE);
            if (!completed())
            {
                return;
            }
        }
    }

    /** @return false if the commit is done (finished already). */
    private boolean plan()
    {
        final long next = nextHeld(position);
        if (next < 0)
        {
            stage = STAGE_FLUSH;
            return true;
        }
        runStart = next;
        runEnd = Math.min(heldRunEnd(next), next + buffer.byteSize());
        stage = STAGE_READ;
        return true;
    }

    /** @return true to go on. */
    private boolean completed()
    {
        if (ioResult < 0)
        {
            finish(ioResult);
            return false;
        }
        switch (stage)
        {
            case STAGE_READ -> stage = STAGE_WRITE;
            case STAGE_WRITE ->
            {
                committed += runEnd - runStart;
                position = runEnd;
                stage = 0;
                listener.onProgress(committed, total);
            }
            default ->
            {
                finish(0);
                return false;
            }
        }
        return true;
    }

    private void finish(final int result)
    {
        stage = 0;
        final IoCompletion completion = this.completion;
        this.completion = null;
        completion.onComplete(cookie, result);
    }

    private long nextHeld(final long offset)
    {
        long next = -1;
        for (final OverlayDevice layer : layers)
        {
            final long candidate = layer.nextAllocated(offset);
            if (candidate >= 0 && (next < 0 || candidate < next))
            {
                next = candidate;
            }
        }
        return next < 0 ? -1 : Math.max(next, offset);
    }

    /** @return end of the run starting at {@code offset} that some layer holds, cluster by cluster. */
    private long heldRunEnd(final long offset)
    {
        long end = offset;
        boolean extended = true;
        while (extended && end < bottom.size())
        {
            extended = false;
            for (final OverlayDevice layer : layers)
            {
                if (end < bottom.size() && layer.isAllocated(end))
                {
                    end = layer.nextUnallocated(end);
                    extended = true;
                }
            }
        }
        return end;
    }
}
