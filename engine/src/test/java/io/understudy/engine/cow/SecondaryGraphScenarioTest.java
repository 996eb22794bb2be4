package io.understudy.engine.cow;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.SyncIo;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.overlay.OverlayCommit;
import io.understudy.engine.overlay.OverlayDevice;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The replication spec's acceptance scenarios that the engine's parts decide alone (section 4.2: AT-05,
 * AT-06, AT-08, AX-01, AX-02, AX-03), on the secondary's graph: forwarded writes through the COW filter into
 * S (64 MiB of 0x11) with H as target, SVM I/O on A -> H -> S, checkpoint = make A empty + new COW epoch,
 * failover = commit of A and H into S. Every byte is compared.
 */
class SecondaryGraphScenarioTest
{
    private static final int M = 1 << 20;
    private static final int SIZE = 64 * M;
    private static final int C = 64 * 1024;

    @TempDir
    Path dir;

    private IoEngine engine;
    private Arena arena;
    private MemorySegment buffer;
    private BlockDevice s;
    private OverlayDevice h;
    private OverlayDevice a;
    private CowFilter cow;

    @BeforeEach
    void setUp() throws Exception
    {
        final Path disk = dir.resolve("s.raw");
        try (RandomAccessFile raf = new RandomAccessFile(disk.toFile(), "rw"))
        {
            final byte[] chunk = new byte[M];
            Arrays.fill(chunk, (byte)0x11);
            for (int i = 0; i < SIZE / M; i++)
            {
                raf.write(chunk);
            }
        }
        engine = new ThreadPoolIoEngine(2);
        arena = Arena.ofShared();
        buffer = arena.allocate(32 * M, 4096);
        s = engine.open(disk, FileOptions.readWrite());
        h = new OverlayDevice(s, new MemoryOverlayStorage(SIZE), C);
        a = new OverlayDevice(h, new MemoryOverlayStorage(SIZE), C);
        cow = new CowFilter(s, h, h::makeEmpty, C);
    }

    @AfterEach
    void tearDown()
    {
        cow.close();
        a.close();
        h.close();
        s.close();
        engine.close();
        arena.close();
    }

    @Test
    void at05ForwardedWritesStayInvisibleAndAt06FailoverRollsThemBack()
    {
        expect(a, 0, SIZE, 0x11);
        write(cow, 32 * M, 32 * M, 0x22);
        expect(a, 32 * M, 32 * M, 0x11);
        expect(s, 32 * M, 32 * M, 0x22);
        write(a, 0, 32 * M, 0x33);
        expect(a, 0, 32 * M, 0x33);
        expect(s, 0, 32 * M, 0x11);

        final OverlayCommit commit = new OverlayCommit(a, arena.allocate(M, 4096), (done, total) ->
        {
        });
        assertEquals(0, SyncIo.run((c, k) ->
        {
            commit.start(c, k);
            return true;
        }));
        for (final BlockDevice device : new BlockDevice[]{a, s})
        {
            expect(device, 0, 32 * M, 0x33);
            expect(device, 32 * M, 32 * M, 0x11);
        }
    }

    @Test
    void at08CheckpointExposesForwardedWrites()
    {
        write(cow, 32 * M, 32 * M, 0x22);
        expect(a, 32 * M, 32 * M, 0x11);
        checkpoint();
        expect(a, 32 * M, 32 * M, 0x22);
        expect(a, 0, 32 * M, 0x11);
    }

    @Test
    void ax01OneCopyPerClusterPerEpoch()
    {
        checkpoint();
        write(cow, M + 512, 512, 0x66);
        write(cow, M + 4096, 4096, 0x77);
        expect(a, M, C, 0x11);
        expect(s, M + 512, 512, 0x66);
        expect(s, M + 4096, 4096, 0x77);
        assertEquals(1, cow.copies());
    }

    @Test
    void ax02SvmDataShadowsCowAndAx03CheckpointDropsSvmWrites()
    {
        write(a, 0, C, 0x33);
        write(cow, 0, C, 0x44);
        expect(a, 0, C, 0x33);
        checkpoint();
        expect(a, 0, C, 0x44);

        write(a, 0, 32 * M, 0x33);
        checkpoint();
        expect(a, 0, C, 0x44);
        expect(a, C, 32 * M - C, 0x11);
    }

    private void checkpoint()
    {
        assertEquals(0, SyncIo.run(a::makeEmpty));
        assertEquals(0, cow.newEpoch(TimeUnit.SECONDS.toNanos(10)));
    }

    private void write(final BlockDevice device, final long offset, final int length, final int value)
    {
        buffer.asSlice(0, length).fill((byte)value);
        assertEquals(length, SyncIo.run((c, k) -> device.write(offset, buffer, length, 0, c, k)));
    }

    private void expect(final BlockDevice device, final long offset, final int length, final int value)
    {
        for (int done = 0; done < length; done += 4 * M)
        {
            final int n = Math.min(4 * M, length - done);
            final byte[] got = SyncIo.read(device, offset + done, buffer, n);
            for (int i = 0; i < n; i++)
            {
                if (got[i] != (byte)value)
                {
                    assertEquals(value, got[i] & 0xFF, "byte at " + (offset + done + i));
                }
            }
        }
    }
}
