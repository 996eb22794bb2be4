package io.understudy.cli.demo;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** After the cut nothing reaches the disk: requests fail with EIO at once and the file keeps its bytes. */
class PowerCutTest
{
    private static final int LENGTH = 4096;

    @TempDir
    Path dir;

    @Test
    void requestsBeforeTheCutLandAndNoneAfterIt() throws Exception
    {
        final Path image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        try (IoEngine engine = new ThreadPoolIoEngine();
            Arena arena = Arena.ofConfined())
        {
            final MemorySegment buffer = arena.allocate(LENGTH, LENGTH);
            final PowerCut disk = new PowerCut(engine.open(image, FileOptions.readWrite()));
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
            disk.close();
        }
        final byte[] bytes = Files.readAllBytes(image);
        for (int i = 0; i < 2 * LENGTH; i++)
        {
            assertEquals(i < LENGTH ? (byte)0x5a : 0, bytes[i], "byte " + i);
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
