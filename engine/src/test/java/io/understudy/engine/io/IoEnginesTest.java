package io.understudy.engine.io;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.io.uring.UringIoEngine;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link IoEngines}: each mode gets its backend, and AUTO chooses per file and falls back as documented. */
class IoEnginesTest
{
    @TempDir
    Path dir;

    @AfterEach
    void clearProperty()
    {
        System.clearProperty(IoEngines.DISABLE_PROPERTY);
    }

    @Test
    void explicitModesGetTheirBackend() throws IOException
    {
        try (IoEngine threads = IoEngines.create(IoMode.THREADS); IoEngine uring = IoEngines.create(IoMode.URING))
        {
            assertInstanceOf(ThreadPoolIoEngine.class, threads);
            assertInstanceOf(UringIoEngine.class, uring);
            assertEquals("io_uring", uring.choice(dir.resolve("x"), FileOptions.readWrite()));
        }
    }

    @Test
    void autoPicksIoUringForDirectFilesAndThreadsForBufferedOnes() throws Exception
    {
        final Path path = file("auto.img");
        try (IoEngine engine = IoEngines.create(IoMode.AUTO); BufferPool pool = new BufferPool(4096, 1))
        {
            final AutoIoEngine auto = assertInstanceOf(AutoIoEngine.class, engine);
            assertTrue(auto.uringAvailable(), "io_uring works on this machine");
            final FileOptions buffered = FileOptions.readWrite();
            final FileOptions direct = buffered.withDirect(true);
            assertTrue(engine.choice(path, direct).startsWith("io_uring for " + path + ": O_DIRECT"),
                engine.choice(path, direct));
            assertTrue(engine.choice(path, buffered).startsWith("threads for " + path + ": buffered"),
                engine.choice(path, buffered));
            try (BlockDevice uringDevice = engine.open(path, direct); BlockDevice threadDevice = engine.open(path, buffered))
            {
                assertEquals("UringFileDevice", uringDevice.getClass().getSimpleName());
                assertEquals("ThreadPoolFileDevice", threadDevice.getClass().getSimpleName());
                assertEquals(4096, uringDevice.alignment());
                assertEquals(1, threadDevice.alignment());
                roundTrip(uringDevice, threadDevice, pool.buffer(pool.acquire()));
            }
        }
    }

    @Test
    void autoFallsBackToThreadsWhenTheProbeFails() throws Exception
    {
        System.setProperty(IoEngines.DISABLE_PROPERTY, "true");
        final Path path = file("fallback.img");
        final FileOptions direct = FileOptions.readWrite().withDirect(true);
        try (IoEngine engine = IoEngines.create(IoMode.AUTO); BufferPool pool = new BufferPool(4096, 1))
        {
            final AutoIoEngine auto = assertInstanceOf(AutoIoEngine.class, engine);
            assertFalse(auto.uringAvailable());
            final String choice = engine.choice(path, direct);
            assertTrue(choice.startsWith("threads for " + path + ": io_uring unavailable (disabled by " +
                IoEngines.DISABLE_PROPERTY), choice);
            try (BlockDevice device = engine.open(path, direct))
            {
                assertEquals("ThreadPoolFileDevice", device.getClass().getSimpleName());
                assertEquals(4096, device.alignment(), "still O_DIRECT");
                roundTrip(device, device, pool.buffer(pool.acquire()));
            }
        }
        final IOException refused = assertThrows(IOException.class, () -> IoEngines.create(IoMode.URING));
        assertTrue(refused.getMessage().startsWith("io_uring is not available: disabled by"), refused.getMessage());
    }

    /** Writes through one device, reads through the other: both reach the same file. */
    private static void roundTrip(final BlockDevice writer, final BlockDevice reader, final MemorySegment buffer)
    {
        buffer.fill((byte)0);
        buffer.set(JAVA_LONG, 0, 0x0123_4567_89AB_CDEFL);
        final Completions completions = new Completions(3);
        assertTrue(writer.write(8192, buffer, 4096, BlockDevice.FLAG_FUA, completions, 0));
        assertEquals(4096, completions.await(0));
        buffer.fill((byte)0x11);
        assertTrue(reader.read(8192, buffer, 4096, completions, 1));
        assertEquals(4096, completions.await(1));
        assertEquals(0x0123_4567_89AB_CDEFL, buffer.get(JAVA_LONG, 0));
        assertEquals(0L, buffer.get(JAVA_LONG, 4088));
        completions.assertExactlyOnce(2);
    }

    private Path file(final String name) throws IOException
    {
        final Path path = dir.resolve(name);
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.setLength(1 << 20);
        }
        return path;
    }
}
