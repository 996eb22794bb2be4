package io.understudy.bench;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.overlay.OverlayDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
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
 * The overlay's read and write paths for 4 KiB requests, measured inline (the file backend runs requests on
 * the calling thread, the memory storage completes synchronously): a read served by the overlay, a read
 * falling through to a tmpfs file (one pread), and a write into an allocated cluster.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
@State(Scope.Benchmark)
public class OverlayBenchmark implements IoCompletion
{
    private static final long SIZE = 64L << 20;
    private static final int CLUSTER = 64 * 1024;
    private static final int IO = 4096;

    private Path file;
    private ThreadPoolIoEngine engine;
    private BlockDevice disk;
    private OverlayDevice overlay;
    private Arena arena;
    private MemorySegment buffer;
    private long next;
    private int lastResult;

    @Setup
    public void setUp() throws IOException
    {
        file = Files.createTempFile(Path.of("/dev/shm"), "overlay-bench", ".img");
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(SIZE);
        }
        engine = new ThreadPoolIoEngine(0);
        disk = engine.open(file, FileOptions.readWrite());
        overlay = new OverlayDevice(disk, new MemoryOverlayStorage(SIZE), CLUSTER);
        arena = Arena.ofShared();
        buffer = arena.allocate(CLUSTER, 4096);
        for (long offset = 0; offset < SIZE / 2; offset += CLUSTER)
        {
            overlay.write(offset, buffer, CLUSTER, 0, this, 0);
        }
    }

    @TearDown
    public void tearDown() throws IOException
    {
        overlay.close();
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

    private long nextOffset()
    {
        next = (next + 7 * IO) & (SIZE / 2 - 1);
        return next;
    }

    @Benchmark
    public int readAllocated()
    {
        overlay.read(nextOffset(), buffer, IO, this, 0);
        return lastResult;
    }

    @Benchmark
    public int readThroughToDisk()
    {
        overlay.read(SIZE / 2 + nextOffset(), buffer, IO, this, 0);
        return lastResult;
    }

    @Benchmark
    public int writeAllocated()
    {
        overlay.write(nextOffset(), buffer, IO, 0, this, 0);
        return lastResult;
    }

    @Benchmark
    public int diskReadBaseline()
    {
        disk.read(SIZE / 2 + nextOffset(), buffer, IO, this, 0);
        return lastResult;
    }
}
