package io.understudy.bench;

import io.understudy.aeron.AeronChannel;
import io.understudy.aeron.AeronLinkContext;
import io.understudy.aeron.AeronMedia;
import io.understudy.aeron.AeronPrimaryLink;
import io.understudy.aeron.AeronSecondaryEndpoint;
import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.device.MemoryDevice;
import io.understudy.engine.link.Hello;
import io.understudy.engine.link.LinkAcceptor;
import io.understudy.engine.link.PeerControl;
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
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.DatagramSocket;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Replicated writes through the Aeron transport alone: the primary's forwarding device, one embedded media driver
 * (run by the media's duty thread, which runs both links' agents too), the secondary endpoint and a memory sink that
 * copies the data and completes at once. Scores are forwarded writes per second, each completed by the secondary's
 * ACK; depth 1 is the round trip, depth 16 keeps 16 writes in flight. Over UDP both ends share the one driver
 * (loopback, mtu 8192).
 * <pre>
 * java @jvm.args -jar bench/target/benchmarks.jar AeronLinkBenchmark -f 1 -wi 2 -i 3 -w 2s -r 2s -prof gc
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class AeronLinkBenchmark
{
    private static final long DISK = 64L << 20;
    private static final int BUDGET = 64;

    @Param({"ipc", "udp"})
    public String transport;

    @Param({"4096", "65536"})
    public int size;

    private Arena arena;
    private AeronMedia media;
    private AeronSecondaryEndpoint endpoint;
    private AeronPrimaryLink link;
    private BlockDevice device;
    private MemorySegment data;
    private long slots;
    private final AtomicInteger completed = new AtomicInteger();
    private final AtomicInteger failures = new AtomicInteger();
    private final IoCompletion onComplete = (cookie, result) ->
    {
        if (result < 0)
        {
            failures.incrementAndGet();
        }
        // Release: the benchmark thread reads the count with acquire and may then reuse the slot's offset.
        completed.incrementAndGet();
    };

    @Setup(Level.Trial)
    public void setUp() throws IOException
    {
        arena = Arena.ofShared();
        data = arena.allocate(size, 4096);
        data.fill((byte)0x5A);
        slots = DISK / size;
        media = AeronMedia.embedded();
        final AeronChannel channel = "ipc".equals(transport) ? AeronChannel.parse("aeron:ipc") :
            AeronChannel.parse("aeron:udp?endpoint=127.0.0.1:" + freePort());
        final AeronLinkContext context = new AeronLinkContext();
        endpoint = AeronSecondaryEndpoint.listen(media, channel, new MemoryDevice(arena.allocate(DISK, 4096)), new AcceptAll(),
            () -> 0, context);
        link = AeronPrimaryLink.connect(media, channel, new Hello(DISK, 65536, false, 1, 0, 200, 5000), context,
            () -> 0, new Quiet());
        device = link.forwarding();
    }

    @TearDown(Level.Trial)
    public void tearDown()
    {
        if (failures.get() != 0)
        {
            throw new IllegalStateException(failures.get() + " forwarded writes failed");
        }
        link.close();
        endpoint.close();
        media.close();
        arena.close();
    }

    @Benchmark
    @OperationsPerInvocation(BUDGET)
    public int writeDepth1()
    {
        return run(1);
    }

    @Benchmark
    @OperationsPerInvocation(BUDGET)
    public int writeDepth16()
    {
        return run(16);
    }

    /** Forwards BUDGET writes with at most {@code depth} in flight and waits for the last ACK. */
    private int run(final int depth)
    {
        final int base = completed.get();
        int submitted = 0;
        while (submitted < BUDGET)
        {
            if (submitted - (completed.get() - base) < depth)
            {
                final long offset = (submitted % slots) * size;
                if (device.write(offset, data, size, 0, onComplete, submitted))
                {
                    submitted++;
                    continue;
                }
            }
            Thread.yield();
        }
        while (completed.get() - base < BUDGET)
        {
            Thread.yield();
        }
        return submitted;
    }

    private static int freePort() throws IOException
    {
        try (DatagramSocket socket = new DatagramSocket(0))
        {
            return socket.getLocalPort();
        }
    }

    private static final class AcceptAll implements LinkAcceptor
    {
        @Override
        public Refusal check(final Hello hello)
        {
            return null;
        }

        @Override
        public PeerControl.Listener listenerFor(final Hello hello)
        {
            return new Quiet();
        }

        @Override
        public void onLink(final PeerControl link, final Hello hello)
        {
        }
    }

    private static final class Quiet implements PeerControl.Listener
    {
        @Override
        public PeerControl.CheckpointAnswer onCheckpointPrepare(final long deadlineNanos, final long primaryEpoch)
        {
            return new PeerControl.CheckpointAnswer(-Errno.EOPNOTSUPP, -1, "benchmark");
        }

        @Override
        public void onLost(final String reason)
        {
            throw new IllegalStateException("link lost during the benchmark: " + reason);
        }

        @Override
        public void onGoodbye(final boolean failover, final String reason)
        {
        }
    }
}
