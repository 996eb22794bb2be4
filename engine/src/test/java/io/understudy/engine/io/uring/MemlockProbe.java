package io.understudy.engine.io.uring;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.BufferPool;
import io.understudy.engine.io.FileOptions;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Run as an unprivileged user by {@link UringIoEngineTest}: asks for more fixed-buffer memory than
 * RLIMIT_MEMLOCK allows, then proves the engine still serves I/O. Prints the fixed-buffer status and the
 * round trip's results.
 */
public final class MemlockProbe
{
    private MemlockProbe()
    {
    }

    public static void main(final String[] args) throws Exception
    {
        try (BufferPool pool = new BufferPool(1 << 20, 16);
            UringIoEngine engine = new UringIoEngine(64, pool);
            BlockDevice device = engine.open(Path.of(args[0]), FileOptions.readWrite()))
        {
            System.out.println(engine.fixedBufferStatus());
            final MemorySegment buffer = pool.buffer(pool.acquire());
            final AtomicInteger result = new AtomicInteger(Integer.MIN_VALUE);
            buffer.set(JAVA_LONG, 0, 0x5EED_5EEDL);
            device.write(4096, buffer, 4096, 0, (cookie, res) -> result.set(res), 0);
            while (result.get() == Integer.MIN_VALUE)
            {
                LockSupport.parkNanos(100_000);
            }
            final int written = result.getAndSet(Integer.MIN_VALUE);
            buffer.set(JAVA_LONG, 0, 0L);
            device.read(4096, buffer, 4096, (cookie, res) -> result.set(res), 1);
            while (result.get() == Integer.MIN_VALUE)
            {
                LockSupport.parkNanos(100_000);
            }
            System.out.println("round trip " + written + " " + result.get() + " " +
                Long.toHexString(buffer.get(JAVA_LONG, 0)));
        }
    }
}
