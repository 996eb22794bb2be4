package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * After the cut nothing reaches the disk: requests fail with EIO at once and the file keeps its bytes. Requests
 * held back before the cut stay in flight until the cut fails them, and never reach the disk either.
 */
class PowerCutTest
{
    private static final int LENGTH = 4096;

    @TempDir
    Path dir;

    private Path image;
    private IoEngine engine;
    private Arena arena;
    private MemorySegment buffer;
    private PowerCut disk;

    @BeforeEach
    void openDisk() throws Exception
    {
        image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        engine = new ThreadPoolIoEngine();
        arena = Arena.ofConfined();
        buffer = arena.allocate(LENGTH, LENGTH);
        disk = new PowerCut(engine.open(image, FileOptions.readWrite()));
    }

    @AfterEach
    void closeDisk()
    {
        disk.close();
        arena.close();
        engine.close();
    }

    @Test
    void requestsBeforeTheCutLandAndNoneAfterIt() throws Exception
    {
        buffer.fill((byte)0x5a);
        assertEquals(LENGTH, write(disk, 0, buffer));
        disk.cut();
        assertTrue(disk.isCut());
        buffer.fill((byte)0x77);
        assertEquals(-Errno.EIO, write(disk, LENGTH, buffer));
        assertEquals(-Errno.EIO, complete(c -> disk.flush((cookie, result) -> c.complete(result), 0)));
        assertEquals(-Errno.EIO, complete(c -> disk.writeZeroes(0, LENGTH, 0, (cookie, result) ->
            c.complete(result), 0)));
        assertEquals(-Errno.EIO, complete(c -> disk.read(0, buffer, LENGTH, (cookie, result) ->
            c.complete(result), 0)));
        assertFirstTwoBlocks((byte)0x5a, (byte)0);
    }

    @Test
    void heldRequestsStayInFlightUntilTheCutFailsThem() throws Exception
    {
        disk.hold();
        buffer.fill((byte)0x77);
        final CompletableFuture<Integer> write = new CompletableFuture<>();
        assertTrue(disk.write(0, buffer, LENGTH, 0, (cookie, result) -> write.complete(result), 0));
        final CompletableFuture<Integer> flush = new CompletableFuture<>();
        assertTrue(disk.flush((cookie, result) -> flush.complete(result), 0));
        assertEquals(2, disk.heldRequests());
        Thread.sleep(100);
        assertFalse(write.isDone(), "a held write completed before the cut");
        assertFalse(flush.isDone(), "a held flush completed before the cut");

        disk.cut();
        assertEquals(-Errno.EIO, write.get(10, TimeUnit.SECONDS));
        assertEquals(-Errno.EIO, flush.get(10, TimeUnit.SECONDS));
        assertEquals(0, disk.heldRequests());
        assertEquals(-Errno.EIO, write(disk, LENGTH, buffer));
        assertFirstTwoBlocks((byte)0, (byte)0);
    }

    /** Every request has completed: what the first two blocks of the file hold. */
    private void assertFirstTwoBlocks(final byte first, final byte second) throws Exception
    {
        final byte[] bytes = Files.readAllBytes(image);
        for (int i = 0; i < 2 * LENGTH; i++)
        {
            assertEquals(i < LENGTH ? first : second, bytes[i], "byte " + i);
        }
    }

    private static int write(final BlockDevice disk, final long offset, final MemorySegment buffer) throws Exception
    {
        return complete(c -> disk.write(offset, buffer, LENGTH, 0, (cookie, result) -> c.complete(result), 0));
    }

    private static int complete(final Submission submission) throws Exception
    {
        final CompletableFuture<Integer> done = new CompletableFuture<>();
        assertTrue(submission.submit(done));
        return done.get(10, TimeUnit.SECONDS);
    }

    @FunctionalInterface
    private interface Submission
    {
        boolean submit(CompletableFuture<Integer> done);
    }
}
