package io.understudy.bench;

import io.understudy.engine.cow.CowFilter;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.overlay.OverlayDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * The COW filter's write path for a 4 KiB forwarded write, inline on a tmpfs disk with a memory-backed hidden
 * overlay as target: into a cluster already copied this epoch (bitmap check, then the write), and into a
 * fresh cluster (64 KiB read from the disk, 64 KiB write into the overlay, then the write).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class CowBenchmark implements IoCompletion
{
    private static final long SIZE = 256L << 20;
    private static final long COPIED_REGION = 32L << 20;
    private static final int CLUSTER = 64 * 1024;
    private static final int IO = 4096;

    private Path file;
    private ThreadPoolIoEngine engine;
    private BlockDevice disk;
    private OverlayDevice hidden;
    private CowFilter cow;
    private Arena arena;
    private MemorySegment buffer;
    private long next;
    private long fresh;
    private int lastResult;

    @Setup
    public void setUp() throws IOException
    {
        file = Files.createTempFile(Path.of("/dev/shm"), "cow-bench", ".img");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(SIZE);
        }
        engine = new ThreadPoolIoEngine(0);
        disk = engine.open(file, FileOptions.readWrite());
        hidden = new OverlayDevice(disk, new MemoryOverlayStorage(SIZE), CLUSTER);
        cow = new CowFilter(disk, hidden, hidden::makeEmpty, CLUSTER);
        arena = Arena.ofShared();
        buffer = arena.allocate(IO, 4096);
        copyRegion();
    }

    /** The next never-copied cluster; a new epoch (outside the measurement) when the disk is used up. */
    @State(Scope.Benchmark)
    public static class Fresh
    {
        @Setup(Level.Invocation)
        public void nextFreshCluster(final CowBenchmark rig)
        {
            rig.fresh += CLUSTER;
            if (rig.fresh >= SIZE)
            {
                if (rig.cow.newEpoch(TimeUnit.SECONDS.toNanos(5)) != 0)
                {
                    throw new IllegalStateException("new epoch failed");
                }
                rig.copyRegion();
            }
        }
    }

    private void copyRegion()
    {
        for (long offset = 0; offset < COPIED_REGION; offset += CLUSTER)
        {
            cow.write(offset, buffer, IO, 0, this, 0);
        }
        fresh = COPIED_REGION;
    }

    @TearDown
    public void tearDown() throws IOException
    {
        cow.close();
        hidden.close();
        disk.close();
        engine.close();
        arena.close();
        Files.deleteIfExists(file);
    }

    @Override
    public void onComplete(final long cookie, final int result)
    {
        lastResult = result;
    }

    @Benchmark
    public int writeCopiedCluster()
    {
        next = (next + 7 * IO) & (COPIED_REGION - 1);
        cow.write(next, buffer, IO, 0, this, 0);
        return lastResult;
    }

    @Benchmark
    public int writeFreshClusterWithCopy(final Fresh ignored)
    {
        cow.write(fresh, buffer, IO, 0, this, 0);
        return lastResult;
    }

    @Benchmark
    public int diskWriteBaseline()
    {
        next = (next + 7 * IO) & (COPIED_REGION - 1);
        disk.write(next, buffer, IO, 0, this, 0);
        return lastResult;
    }
}
