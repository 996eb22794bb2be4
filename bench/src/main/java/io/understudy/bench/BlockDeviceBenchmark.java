package io.understudy.bench;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.BufferPool;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.io.uring.UringIoEngine;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Both I/O backends on one file: 4 KiB random reads and writes at queue depth 1 and 32, and 1 MiB
 * sequential reads and writes at queue depth 8, buffered or O_DIRECT. The score is requests per second
 * (IOPS; times 1 MiB for the sequential rows).
 * <p>
 * Queue depth is kept constant the way fio keeps it: each completion submits the next request from the
 * completion thread, so {@code depth} requests stay in flight until the invocation's budget is issued;
 * the benchmark thread only starts the pipeline and parks until the last completion. Offsets are
 * precomputed and buffers come from one pool (registered as fixed buffers for io_uring), so the measured
 * path allocates nothing: check with {@code -prof gc}.
 * <pre>
 * java @jvm.args -jar bench/target/benchmarks.jar BlockDeviceBenchmark -f 1 -wi 1 -i 2 -w 1s -r 1s -prof gc
 * </pre>
 * The file lives in {@code dir} (default /tmp: ext4, where O_DIRECT reaches the disk; /dev/shm is tmpfs).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class BlockDeviceBenchmark
{
    private static final int SMALL = 4096;
    private static final int LARGE = 1 << 20;
    private static final int SMALL_BUDGET = 256;
    private static final int LARGE_BUDGET = 32;
    private static final int MAX_DEPTH = 32;
    private static final int OFFSETS = 1 << 16;

    @Param({"threads", "uring"})
    public String backend;

    @Param({"false", "true"})
    public boolean direct;

    @Param({"64"})
    public int fileMiB;

    @Param({"/tmp"})
    public String dir;

    private Path path;
    private BufferPool pool;
    private IoEngine engine;
    private BlockDevice device;
    private final long[] randomOffsets = new long[OFFSETS];
    private Pipeline pipeline;

    @Setup(Level.Trial)
    public void setUp() throws IOException
    {
        path = Files.createTempFile(Path.of(dir), "understudy-bench", ".img");
        path.toFile().deleteOnExit(); // also when a failed iteration skips the tear-down
        final long size = (long)fileMiB << 20;
        writeData(path, size);
        pool = new BufferPool(LARGE, MAX_DEPTH);
        engine = "uring".equals(backend) ?
            new UringIoEngine(UringIoEngine.DEFAULT_RING_ENTRIES, pool) : new ThreadPoolIoEngine(2);
        device = engine.open(path, FileOptions.readWrite().withDirect(direct).withQueueDepth(64));
        final SplittableRandom random = new SplittableRandom(42);
        for (int i = 0; i < OFFSETS; i++)
        {
            randomOffsets[i] = random.nextLong(size / SMALL) * SMALL;
        }
        pipeline = new Pipeline(device, pool, randomOffsets, size);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException
    {
        device.close();
        engine.close();
        pool.close();
        Files.deleteIfExists(path);
    }

    @Benchmark
    @OperationsPerInvocation(SMALL_BUDGET)
    public int randomRead4kDepth1()
    {
        return pipeline.run(false, SMALL, 1, SMALL_BUDGET, true);
    }

    @Benchmark
    @OperationsPerInvocation(SMALL_BUDGET)
    public int randomRead4kDepth32()
    {
        return pipeline.run(false, SMALL, 32, SMALL_BUDGET, true);
    }

    @Benchmark
    @OperationsPerInvocation(SMALL_BUDGET)
    public int randomWrite4kDepth1()
    {
        return pipeline.run(true, SMALL, 1, SMALL_BUDGET, true);
    }

    @Benchmark
    @OperationsPerInvocation(SMALL_BUDGET)
    public int randomWrite4kDepth32()
    {
        return pipeline.run(true, SMALL, 32, SMALL_BUDGET, true);
    }

    @Benchmark
    @OperationsPerInvocation(LARGE_BUDGET)
    public int sequentialRead1mDepth8()
    {
        return pipeline.run(false, LARGE, 8, LARGE_BUDGET, false);
    }

    @Benchmark
    @OperationsPerInvocation(LARGE_BUDGET)
    public int sequentialWrite1mDepth8()
    {
        return pipeline.run(true, LARGE, 8, LARGE_BUDGET, false);
    }

    /** Fills the file with non-zero data, so reads hit allocated blocks and writes overwrite in place. */
    private static void writeData(final Path path, final long size) throws IOException
    {
        final ByteBuffer block = ByteBuffer.allocateDirect(LARGE);
        final SplittableRandom random = new SplittableRandom(7);
        while (block.hasRemaining())
        {
            block.put((byte)(random.nextInt(255) + 1));
        }
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.WRITE))
        {
            for (long offset = 0; offset < size; offset += LARGE)
            {
                block.clear();
                while (block.hasRemaining())
                {
                    channel.write(block, offset + block.position());
                }
            }
            channel.force(false);
        }
    }

    /**
     * Keeps {@code depth} requests in flight: the completion of a request submits the next one from the
     * completion thread, into the same buffer (cookie = buffer slot), until the budget is issued.
     */
    static final class Pipeline implements IoCompletion
    {
        private final BlockDevice device;
        private final BufferPool pool;
        private final long[] randomOffsets;
        private final long size;
        private final AtomicInteger issued = new AtomicInteger();
        private final AtomicInteger completed = new AtomicInteger();
        private volatile int firstError;
        private Thread waiter;
        private boolean write;
        private int length;
        private int budget;
        private boolean random;
        /** Requests issued by earlier runs: each run continues where the last one stopped. */
        private long position;

        Pipeline(final BlockDevice device, final BufferPool pool, final long[] randomOffsets, final long size)
        {
            this.device = device;
            this.pool = pool;
            this.randomOffsets = randomOffsets;
            this.size = size;
        }

        /** @return the number of requests completed (all of them; errors throw). */
        int run(final boolean write, final int length, final int depth, final int budget, final boolean random)
        {
            // Plain fields, published to the completion threads by the submissions' queue hand-over.
            this.write = write;
            this.length = length;
            this.budget = budget;
            this.random = random;
            this.waiter = Thread.currentThread();
            completed.set(0);
            issued.set(depth);
            for (int slot = 0; slot < depth; slot++)
            {
                submit(slot, slot);
            }
            while (completed.get() < budget)
            {
                LockSupport.park(this);
            }
            if (firstError != 0)
            {
                throw new IllegalStateException("I/O failed: " + Errno.name(firstError));
            }
            position += budget;
            return budget;
        }

        @Override
        public void onComplete(final long cookie, final int result)
        {
            if (result < 0)
            {
                fail(result);
            }
            final int next = issued.getAndIncrement();
            if (next < budget)
            {
                submit((int)cookie, next);
            }
            if (completed.incrementAndGet() == budget)
            {
                LockSupport.unpark(waiter);
            }
        }

        private void submit(final int slot, final int sequence)
        {
            final long n = position + sequence;
            final long offset = random ? randomOffsets[(int)(n & (randomOffsets.length - 1))] : n * length % size;
            final boolean accepted = write ?
                device.write(offset, pool.buffer(slot), length, 0, this, slot) :
                device.read(offset, pool.buffer(slot), length, this, slot);
            if (!accepted)
            {
                // Cannot happen below the device's queue depth; count it as done so that the run ends and fails.
                fail(-Errno.EAGAIN);
                if (completed.incrementAndGet() == budget)
                {
                    LockSupport.unpark(waiter);
                }
            }
        }

        private void fail(final int result)
        {
            if (firstError == 0)
            {
                firstError = result;
            }
        }
    }
}
