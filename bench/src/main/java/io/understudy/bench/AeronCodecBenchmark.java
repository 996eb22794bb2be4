package io.understudy.bench;

import io.understudy.aeron.AckFlyweight;
import io.understudy.aeron.MessageHeader;
import io.understudy.aeron.RequestFlyweight;
import io.understudy.aeron.WireProtocol;
import org.agrona.concurrent.UnsafeBuffer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;

/**
 * The Aeron link's codec on its hot path: encoding a WRITE header (what the primary does per forwarded write),
 * checking and decoding it (the secondary, per message), and the ACK both ways. Flyweights over one off-heap
 * buffer: {@code -prof gc} should show 0 B/op.
 * <pre>
 * java @jvm.args -jar bench/target/benchmarks.jar AeronCodecBenchmark -f 1 -wi 2 -i 3 -w 1s -r 1s -prof gc
 * </pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class AeronCodecBenchmark
{
    private final UnsafeBuffer buffer = new UnsafeBuffer(ByteBuffer.allocateDirect(256));
    private final MessageHeader header = new MessageHeader();
    private final RequestFlyweight request = new RequestFlyweight();
    private final AckFlyweight ack = new AckFlyweight();
    private long cookie;

    @Setup
    public void setUp()
    {
        header.wrap(buffer, 0);
        request.wrap(buffer, MessageHeader.LENGTH);
        ack.wrap(buffer, 128 + MessageHeader.LENGTH);
        header.encode(WireProtocol.WRITE);
        request.encode(1, 4096, 4096, 0);
    }

    @Benchmark
    public long encodeWrite()
    {
        header.encode(WireProtocol.WRITE);
        request.encode(++cookie, cookie << 12, 4096, 0);
        return cookie;
    }

    @Benchmark
    public long decodeWrite()
    {
        if (MessageHeader.check(header, MessageHeader.LENGTH + RequestFlyweight.BLOCK_LENGTH + 4096) !=
            MessageHeader.Verdict.OK)
        {
            return -1;
        }
        return header.templateId() + request.cookie() + request.diskOffset() + request.length() + request.flags();
    }

    @Benchmark
    public long encodeDecodeAck()
    {
        ack.encode(++cookie, 4096);
        return ack.cookie() + ack.result();
    }
}
