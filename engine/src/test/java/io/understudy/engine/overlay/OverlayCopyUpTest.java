package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An overlay filling clusters from its backing in the kernel ({@link OverlayDevice#copyFrom}), as a COW filter
 * saves originals into the hidden overlay: the clusters it did not hold take the backing's bytes of that moment,
 * the ones it held keep theirs, and later writes to the backing no longer show through.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class OverlayCopyUpTest
{
    private static final int SIZE = 2 << 20;
    private static final int CLUSTER = 64 * 1024;

    @TempDir
    Path dir;

    @Test
    void copyUpFillsTheClustersNotHeldWithTheBackingsBytesAndKeepsTheOthers() throws IOException
    {
        final Random random = new Random(21);
        final byte[] original = bytes(random, SIZE);
        Files.write(dir.resolve("s.img"), original);
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(1);
            Arena arena = Arena.ofShared();
            BlockDevice s = engine.open(dir.resolve("s.img"), FileOptions.readWrite());
            OverlayDevice h = new OverlayDevice(s, storage(engine), CLUSTER))
        {
            final MemorySegment buffer = arena.allocate(SIZE, 4096);
            assertTrue(h.canCopyFrom(s));

            // Cluster 1 is held already, with bytes of its own in its middle.
            final byte[] held = bytes(random, 1000);
            assertEquals(held.length, SyncIo.write(h, CLUSTER + 5000, buffer, held));
            final byte[] view = original.clone();
            System.arraycopy(held, 0, view, CLUSTER + 5000, held.length);

            assertEquals(0, SyncIo.run((c, k) -> h.copyFrom(s, 0, 4L * CLUSTER, c, k)));
            assertEquals(4L * CLUSTER, h.allocatedBytes());

            // The backing changes everywhere: only clusters 4 and on show it through the overlay.
            final byte[] changed = bytes(random, SIZE);
            assertEquals(SIZE, SyncIo.write(s, 0, buffer, changed));
            System.arraycopy(changed, 4 * CLUSTER, view, 4 * CLUSTER, SIZE - 4 * CLUSTER);
            assertArrayEquals(view, SyncIo.read(h, 0, buffer, SIZE));
        }
    }

    @Test
    void refusesARangeOfPartClustersAndAnySourceButTheBacking() throws IOException
    {
        Files.write(dir.resolve("s.img"), new byte[SIZE]);
        Files.write(dir.resolve("other.img"), new byte[SIZE]);
        try (ThreadPoolIoEngine engine = new ThreadPoolIoEngine(0);
            BlockDevice s = engine.open(dir.resolve("s.img"), FileOptions.readWrite());
            BlockDevice other = engine.open(dir.resolve("other.img"), FileOptions.readWrite());
            OverlayDevice h = new OverlayDevice(s, storage(engine), CLUSTER);
            OverlayDevice inMemory = new OverlayDevice(s, new MemoryOverlayStorage(SIZE, CLUSTER), CLUSTER))
        {
            assertEquals(-Errno.EINVAL, SyncIo.run((c, k) -> h.copyFrom(s, 4096, CLUSTER, c, k)));
            assertEquals(-Errno.EINVAL, SyncIo.run((c, k) -> h.copyFrom(s, 0, CLUSTER + 4096, c, k)));
            assertFalse(h.canCopyFrom(other));
            assertEquals(-Errno.EOPNOTSUPP, SyncIo.run((c, k) -> h.copyFrom(other, 0, CLUSTER, c, k)));
            assertEquals(-Errno.ENOSPC, SyncIo.run((c, k) -> h.copyFrom(s, SIZE, CLUSTER, c, k)));
            assertFalse(inMemory.canCopyFrom(s), "memory storage has no file to copy into");
            assertEquals(-Errno.EOPNOTSUPP, SyncIo.run((c, k) -> inMemory.copyFrom(s, 0, CLUSTER, c, k)));
            assertEquals(0, h.allocatedBytes());
            assertEquals(0, inMemory.allocatedBytes());
        }
    }

    private FileOverlayStorage storage(final ThreadPoolIoEngine engine) throws IOException
    {
        return FileOverlayStorage.create(engine, dir.resolve("h.img"), SIZE, FileOptions.readWrite());
    }

    private static byte[] bytes(final Random random, final int length)
    {
        final byte[] bytes = new byte[length];
        random.nextBytes(bytes);
        return bytes;
    }
}
