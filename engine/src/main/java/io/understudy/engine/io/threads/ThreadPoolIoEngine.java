package io.understudy.engine.io.threads;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.IoOffload;
import io.understudy.engine.io.posix.LibC;
import io.understudy.engine.io.posix.Op;
import io.understudy.engine.io.posix.PosixFile;
import org.agrona.concurrent.ManyToManyConcurrentArrayQueue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;

/**
 * The portable backend: blocking positional syscalls (pread, pwrite, fdatasync, fallocate) executed by a
 * small pool of worker threads, or inline on the submitting thread: every request when the pool has no
 * workers, all but flushes and FUA requests with {@link IoOffload#FLUSHES}.
 * <p>
 * Measured on 2 vCPUs, page-cache and tmpfs I/O is as fast or faster this way than through io_uring, which
 * punts such I/O to its own worker threads anyway; see {@code docs/jvm-stack.md} in the shared notes.
 * <p>
 * Work is handed over through a bounded lock-free queue of preallocated request slots. Idle workers spin
 * briefly, then park; a submitter unparks one parked worker. The lost-wake-up race is closed Dekker-style:
 * a worker publishes "parked" before re-checking the queue, a submitter publishes its request before
 * checking "parked", both with volatile (sequentially consistent) accesses, so one of them sees the other.
 */
public final class ThreadPoolIoEngine implements IoEngine
{
    public static final int DEFAULT_WORKERS = 2;
    private static final int QUEUE_CAPACITY = 16384;
    private static final int SPINS_BEFORE_PARK = 200;

    private final ManyToManyConcurrentArrayQueue<ThreadPoolFileDevice.Request> queue =
        new ManyToManyConcurrentArrayQueue<>(QUEUE_CAPACITY);
    private final Thread[] workers;
    private final IoOffload offload;
    /** 1 while worker i is parked or about to park, 0 otherwise. */
    private final AtomicIntegerArray parked;
    private volatile boolean running = true;

    /**
     * @param workerCount threads executing requests; 0 executes every request inline on the submitting
     *                    thread, completing it before the submit call returns.
     */
    public ThreadPoolIoEngine(final int workerCount)
    {
        this(workerCount, IoOffload.ALL);
    }

    /**
     * @param workerCount threads executing the requests {@code offload} selects; 0 executes every request inline.
     * @param offload     which requests go to the workers; the others complete inline, before submit returns.
     */
    public ThreadPoolIoEngine(final int workerCount, final IoOffload offload)
    {
        if (workerCount < 0)
        {
            throw new IllegalArgumentException("workerCount must be >= 0: " + workerCount);
        }
        this.offload = offload;
        workers = new Thread[workerCount];
        parked = new AtomicIntegerArray(Math.max(1, workerCount));
        for (int i = 0; i < workerCount; i++)
        {
            final int index = i;
            workers[i] = Thread.ofPlatform().name("understudy-io-" + i).daemon(true).unstarted(() -> runWorker(index));
            workers[i].start();
        }
    }

    public ThreadPoolIoEngine()
    {
        this(DEFAULT_WORKERS);
    }

    @Override
    public String name()
    {
        return "threads";
    }

    @Override
    public BlockDevice open(final Path path, final FileOptions options) throws IOException
    {
        return new ThreadPoolFileDevice(this, PosixFile.open(path, options), options.queueDepth());
    }

    /** @return true if a request of this kind runs on the submitting thread. */
    boolean runsInline(final int op, final int flags)
    {
        if (workers.length == 0)
        {
            return true;
        }
        return offload == IoOffload.FLUSHES && op != Op.FLUSH && (flags & BlockDevice.FLAG_FUA) == 0;
    }

    /** @return false if the hand-over queue is full (back-pressure). */
    boolean dispatch(final ThreadPoolFileDevice.Request request)
    {
        if (!queue.offer(request))
        {
            return false;
        }
        if (!running)
        {
            // close() stopped the workers, which may have drained the queue before our offer: fail what is
            // left ourselves. Both sides are volatile (offer's CAS, running), so either a worker's final drain
            // sees our request or we see running == false; the queue hands each request to one poller only.
            abortQueued();
            return true;
        }
        // Volatile reads after the queue's release-store: pairs with the worker's park protocol below.
        for (int i = 0; i < workers.length; i++)
        {
            if (parked.get(i) == 1 && parked.compareAndSet(i, 1, 0))
            {
                LockSupport.unpark(workers[i]);
                break;
            }
        }
        return true;
    }

    private void runWorker(final int index)
    {
        try (Arena arena = Arena.ofConfined())
        {
            final LibC.ErrnoState errno = new LibC.ErrnoState(arena);
            while (running)
            {
                ThreadPoolFileDevice.Request request = queue.poll();
                for (int spin = 0; request == null && spin < SPINS_BEFORE_PARK; spin++)
                {
                    Thread.onSpinWait();
                    request = queue.poll();
                }
                if (request != null)
                {
                    request.execute(errno);
                    continue;
                }
                parked.set(index, 1);
                if (!queue.isEmpty() || !running)
                {
                    parked.compareAndSet(index, 1, 0);
                    continue;
                }
                LockSupport.park(this);
                parked.compareAndSet(index, 1, 0); // spurious wake-up: clear our own flag
            }
            // Requests still queued at shutdown complete with ESHUTDOWN so that nobody waits forever.
            abortQueued();
        }
    }

    private void abortQueued()
    {
        ThreadPoolFileDevice.Request request;
        while ((request = queue.poll()) != null)
        {
            request.abort();
        }
    }

    /** Stops the workers; requests still queued complete with ESHUTDOWN. Close devices first. */
    @Override
    public void close()
    {
        running = false;
        for (final Thread worker : workers)
        {
            LockSupport.unpark(worker);
        }
        for (final Thread worker : workers)
        {
            try
            {
                worker.join();
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
