package io.understudy.engine.io;

/**
 * How a file is opened as a block device.
 *
 * @param readOnly   open without write access; write-type requests fail with EPERM.
 * @param direct     bypass the page cache (O_DIRECT); requests must then honour the device alignment.
 * @param queueDepth most requests in flight on this device; further submissions see back-pressure.
 */
public record FileOptions(boolean readOnly, boolean direct, int queueDepth)
{
    public static final int DEFAULT_QUEUE_DEPTH = 128;

    public FileOptions
    {
        if (queueDepth < 1 || queueDepth > 4096)
        {
            throw new IllegalArgumentException("queueDepth must be in [1, 4096]: " + queueDepth);
        }
    }

    public static FileOptions readWrite()
    {
        return new FileOptions(false, false, DEFAULT_QUEUE_DEPTH);
    }

    public static FileOptions readOnlyFile()
    {
        return new FileOptions(true, false, DEFAULT_QUEUE_DEPTH);
    }

    public FileOptions withDirect(final boolean direct)
    {
        return new FileOptions(readOnly, direct, queueDepth);
    }

    public FileOptions withQueueDepth(final int queueDepth)
    {
        return new FileOptions(readOnly, direct, queueDepth);
    }
}
