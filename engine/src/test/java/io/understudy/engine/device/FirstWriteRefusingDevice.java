package io.understudy.engine.device;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Test device: refuses its first write (back-pressure) after running {@code beforeRefusal} on the submitting
 * thread, which lets a test change the world inside the window between a refusal and the caller's reaction to
 * it; every later write passes to the device below.
 */
public final class FirstWriteRefusingDevice extends ForwardingBlockDevice
{
    private final Runnable beforeRefusal;
    private final AtomicInteger writeCalls = new AtomicInteger();

    public FirstWriteRefusingDevice(final BlockDevice device, final Runnable beforeRefusal)
    {
        super(device);
        this.beforeRefusal = beforeRefusal;
    }

    /** @return writes submitted here, the refused one included. */
    public int writeCalls()
    {
        return writeCalls.get();
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final int flags,
        final IoCompletion completion, final long cookie)
    {
        if (writeCalls.getAndIncrement() == 0)
        {
            beforeRefusal.run();
            return false;
        }
        return super.write(offset, buffer, length, flags, completion, cookie);
    }
}
