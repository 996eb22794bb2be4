package io.understudy.engine.io.threads;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoOffload;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Where {@link ThreadPoolIoEngine} runs each request: with {@link IoOffload#FLUSHES} a submitting thread makes
 * the page-cache syscalls itself and never the ones that wait for the disk.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ThreadPoolIoEngineTest
{
    @TempDir
    Path dir;

    @Test
    void withFlushesOffloadedOnlyFlushesAndFuaRequestsLeaveTheSubmittingThread() throws Exception
    {
        withDevice(IoOffload.FLUSHES, (device, buffer) ->
        {
            final Thread caller = Thread.currentThread();
            assertSame(caller, completingThread((c, k) -> device.write(0, buffer, 4096, 0, c, k)), "write");
            assertSame(caller, completingThread((c, k) -> device.read(0, buffer, 4096, c, k)), "read");
            assertSame(caller, completingThread((c, k) -> device.discard(0, 4096, c, k)), "discard");
            assertSame(caller, completingThread((c, k) -> device.writeZeroes(0, 4096, 0, c, k)), "zeroes");

            assertWorker(completingThread(device::flush), "flush");
            assertWorker(completingThread((c, k) -> device.write(0, buffer, 4096, BlockDevice.FLAG_FUA, c, k)),
                "FUA write");
            assertWorker(completingThread((c, k) -> device.writeZeroes(0, 4096, BlockDevice.FLAG_FUA, c, k)),
                "FUA zeroes");
        });
    }

    @Test
    void withEverythingOffloadedNoRequestRunsOnTheSubmittingThread() throws Exception
    {
        withDevice(IoOffload.ALL, (device, buffer) ->
        {
            assertWorker(completingThread((c, k) -> device.write(0, buffer, 4096, 0, c, k)), "write");
            assertWorker(completingThread((c, k) -> device.read(0, buffer, 4096, c, k)), "read");
            assertWorker(completingThread(device::flush), "flush");
        });
    }

    /** Runs {@code body} on a 1 MiB file of an engine with one worker, with a 4 KiB buffer any thread may use. */
    private void withDevice(final IoOffload offload, final DeviceBody body) throws Exception
    {
        final Path path = dir.resolve("disk.img");
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.setLength(1 << 20);
        }
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(1, offload);
            BlockDevice device = engine.open(path, FileOptions.readWrite());
            Arena arena = Arena.ofShared())
        {
            body.run(device, arena.allocate(4096, 4096));
        }
    }

    private static void assertWorker(final Thread thread, final String request)
    {
        assertTrue(thread.getName().startsWith("understudy-io-"), request + " completed on " + thread.getName());
    }

    /** Submits one request and returns the thread its completion ran on, after checking that it succeeded. */
    private static Thread completingThread(final Submission submission) throws Exception
    {
        final CompletableFuture<Thread> thread = new CompletableFuture<>();
        final int[] result = new int[1];
        assertTrue(submission.submit((cookie, r) ->
        {
            result[0] = r;
            thread.complete(Thread.currentThread());
        }, 0));
        final Thread completed = thread.get(10, TimeUnit.SECONDS);
        assertTrue(result[0] >= 0, "result " + result[0]);
        return completed;
    }

    @FunctionalInterface
    private interface DeviceBody
    {
        void run(BlockDevice device, MemorySegment buffer) throws Exception;
    }

    @FunctionalInterface
    private interface Submission
    {
        boolean submit(IoCompletion completion, long cookie);
    }
}
