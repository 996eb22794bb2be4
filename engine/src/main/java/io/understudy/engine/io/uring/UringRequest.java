package io.understudy.engine.io.uring;

import io.understudy.engine.device.IoCompletion;

import java.lang.foreign.MemorySegment;

/**
 * One preallocated request slot of a {@link RingAgent}; its {@link #index} is the SQE {@code user_data}.
 * <p>
 * The submitting thread writes the request fields, then hands the slot to the agent through the MPSC
 * submission queue, whose release store publishes them. From then on only the agent touches the slot
 * until it completes it and returns it to the free queue (again a release hand-over).
 */
final class UringRequest
{
    /** No fixed buffer: plain READ/WRITE. */
    static final short NOT_FIXED = -1;

    final int index;

    UringFileDevice device;
    int op;
    long offset;
    MemorySegment buffer;
    long length;
    int flags;
    short fixedBuffer;
    IoCompletion completion;
    long cookie;

    /** Agent-only: the step of the request's state machine the outstanding SQE performs. */
    int stage;
    /** Agent-only: bytes done so far (short reads and writes are continued, zeroes are written in chunks). */
    long done;

    UringRequest(final int index)
    {
        this.index = index;
    }

    void set(
        final UringFileDevice device, final int op, final long offset, final MemorySegment buffer, final long length,
        final int flags, final short fixedBuffer, final IoCompletion completion, final long cookie)
    {
        this.device = device;
        this.op = op;
        this.offset = offset;
        this.buffer = buffer;
        this.length = length;
        this.flags = flags;
        this.fixedBuffer = fixedBuffer;
        this.completion = completion;
        this.cookie = cookie;
        this.stage = 0;
        this.done = 0;
    }

    /** Drops references so that a free slot keeps no caller object reachable. */
    void clear()
    {
        device = null;
        buffer = null;
        completion = null;
    }
}
