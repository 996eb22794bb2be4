package io.understudy.aeron;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
import io.understudy.engine.overlay.MemoryOverlayStorage;
import io.understudy.engine.replication.CheckpointReport;
import io.understudy.engine.replication.ControlResult;
import io.understudy.engine.replication.ReplicationMode;
import io.understudy.engine.replication.ReplicationPrimary;
import io.understudy.engine.replication.ReplicationSecondary;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The engine's replication over the Aeron link: a ReplicationPrimary forwarding through {@link AeronPrimaryLink}
 * to a ReplicationSecondary's sink behind an {@link AeronSecondaryEndpoint}, checkpoints coordinated over the
 * link's barrier; after every checkpoint the secondary's disk equals the primary's, byte for byte.
 */
@Timeout(120)
class AeronReplicationTest extends LinkTestBase
{
    private static final int CLUSTER = 65536;

    @ParameterizedTest(name = "udp={0}")
    @ValueSource(booleans = {false, true})
    void secondaryDiskEqualsPrimaryAfterEachCheckpoint(final boolean udp) throws Exception
    {
        final ThreadPoolIoEngine engine = own(new ThreadPoolIoEngine(2));
        final Path primaryFile = sized("primary.img");
        final Path secondaryFile = sized("secondary.img");
        final BlockDevice local = own(engine.open(primaryFile, FileOptions.readWrite()));
        final BlockDevice disk = own(engine.open(secondaryFile, FileOptions.readWrite()));
        final ReplicationSecondary secondary = own(new ReplicationSecondary(disk, new MemoryOverlayStorage(DISK),
            new MemoryOverlayStorage(DISK), CLUSTER, false, 16));
        assertEquals(ControlResult.OK, secondary.start(ReplicationMode.SECONDARY));

        final LinkFixture.Events secondaryEvents = new LinkFixture.Events();
        secondaryEvents.checkpoint = epoch ->
        {
            final CheckpointReport report = secondary.checkpoint(TimeUnit.SECONDS.toNanos(5));
            return new PeerControl.CheckpointAnswer(report.result(), report.epoch(), report.reason());
        };
        final LinkAcceptor acceptor = new LinkAcceptor()
        {
            @Override
            public Refusal check(final Hello hello)
            {
                return null;
            }

            @Override
            public PeerControl.Listener listenerFor(final Hello hello)
            {
                return secondaryEvents;
            }

            @Override
            public void onLink(final PeerControl link, final Hello hello)
            {
            }
        };
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia secondaryMedia = own(AeronMedia.embedded());
        final AeronMedia primaryMedia = udp ? own(AeronMedia.embedded()) : secondaryMedia;
        final AeronChannel channel = LinkFixture.channel(udp);
        final AeronSecondaryEndpoint endpoint = own(AeronSecondaryEndpoint.listen(secondaryMedia, channel,
            secondary.sink(), acceptor, secondary::epoch, context));
        final LinkFixture.Events primaryEvents = new LinkFixture.Events();
        final AeronPrimaryLink link = own(AeronPrimaryLink.connect(primaryMedia, channel,
            new Hello(DISK, CLUSTER, false, 77, 0, 100, 1500), context, () -> 0, primaryEvents));
        final ReplicationPrimary primary = own(new ReplicationPrimary(local, link.forwarding(), false, CLUSTER,
            TimeUnit.SECONDS.toNanos(5), 16));
        assertEquals(ControlResult.OK, primary.start(ReplicationMode.PRIMARY));
        final DutyCycle duty = own(new DutyCycle(primary));

        final Random random = new Random(3);
        final AtomicIntegerArray results = new AtomicIntegerArray(STRIPES);
        for (int epoch = 0; epoch < 5; epoch++)
        {
            for (int round = 0; round < 4; round++)
            {
                for (int i = 0; i < STRIPES; i++)
                {
                    results.set(i, Integer.MIN_VALUE);
                }
                for (int stripe = 0; stripe < STRIPES; stripe++)
                {
                    final int length = 512 * (1 + random.nextInt(256));
                    final long offset = (long)stripe * STRIPE + 512L * random.nextInt((STRIPE - length) / 512 + 1);
                    final byte[] data = new byte[length];
                    random.nextBytes(data);
                    final MemorySegment segment = arena.allocate(length, 4096);
                    MemorySegment.copy(data, 0, segment, ValueLayout.JAVA_BYTE, 0, length);
                    submit(s -> primary.write(offset, segment, length, 0, (c, r) -> results.set((int)c, r), s),
                        stripe);
                }
                awaitAll(results, STRIPES);
                for (int i = 0; i < STRIPES; i++)
                {
                    assertTrue(results.get(i) > 0, "stripe " + i + ": " + results.get(i));
                }
            }
            final CheckpointReport report = primary.checkpoint(TimeUnit.SECONDS.toNanos(10),
                deadline -> link.checkpointPeer(deadline, primary.epoch()).result());
            assertTrue(report.ok(), report.toString());
            assertEquals(epoch + 1, primary.epoch());
            assertEquals(epoch + 1, secondary.epoch());
            assertArrayEquals(Files.readAllBytes(primaryFile), Files.readAllBytes(secondaryFile),
                "after checkpoint " + (epoch + 1));
        }
        assertFalse(primary.isDegraded());
        assertEquals(PeerControl.State.UP, link.state());

        // The secondary vanishes: the link is lost within the heartbeat timeout and the next guest write degrades
        // the pair, as over NBD, while the guest write itself succeeds on the primary's disk.
        if (udp)
        {
            secondaryMedia.close();
        }
        else
        {
            ((SecondaryLink)endpoint.link()).lost("test: silenced");
            endpoint.close();
        }
        assertTrue(primaryEvents.awaitLost(5_000), "the primary never noticed");
        final MemorySegment last = arena.allocate(4096, 4096);
        last.fill((byte)0x77);
        results.set(0, Integer.MIN_VALUE);
        submit(s -> primary.write(0, last, 4096, 0, (c, r) -> results.set((int)c, r), s), 0);
        awaitAll(results, 1);
        assertEquals(4096, results.get(0));
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!primary.isDegraded() && System.nanoTime() < deadline)
        {
            Thread.sleep(5);
        }
        assertTrue(primary.isDegraded(), "the pair did not degrade");
        assertEquals(0x77, Files.readAllBytes(primaryFile)[0]);
        duty.close();
    }

    private Path sized(final String name) throws Exception
    {
        final Path file = dir.resolve(name);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"))
        {
            raf.setLength(DISK);
        }
        return file;
    }

    /** Runs the primary's duty cycle (deadlines, back-pressure retries) until closed. */
    private static final class DutyCycle implements AutoCloseable
    {
        private final Thread thread;
        private volatile boolean running = true;

        DutyCycle(final ReplicationPrimary primary)
        {
            thread = Thread.ofPlatform().daemon(true).name("primary-duty-cycle").start(() ->
            {
                while (running)
                {
                    if (primary.doWork() == 0)
                    {
                        LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(100));
                    }
                }
            });
        }

        @Override
        public void close() throws InterruptedException
        {
            running = false;
            thread.join();
        }
    }
}
