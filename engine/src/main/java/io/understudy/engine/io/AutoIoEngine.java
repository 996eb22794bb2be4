package io.understudy.engine.io;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.io.threads.ThreadPoolIoEngine;
import io.understudy.engine.io.uring.UringIoEngine;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The {@link IoMode#AUTO} engine: picks a backend per file, from what was measured on a 2-vCPU VM
 * (shared notes, jvm-stack.md section 4):
 * <ul>
 *   <li>O_DIRECT files go to io_uring when the startup probe succeeded: one thread keeps 32 requests in
 *   flight and reached about 4x the IOPS of queue depth 1, what positional I/O needs 32 threads for.</li>
 *   <li>Buffered files (page cache, tmpfs) go to the thread backend: io_uring was no faster there (page
 *   cache hits) or 2-4x slower (tmpfs, punted to io-wq workers), and buffered writes are punted anyway.</li>
 * </ul>
 * The io_uring engine, and its thread, is started on the first O_DIRECT open only.
 */
public final class AutoIoEngine implements IoEngine
{
    private final ThreadPoolIoEngine threads;
    private final String uringRefusal;
    private UringIoEngine uring;

    /**
     * @param uringRefusal  null if the io_uring probe succeeded, else why it failed.
     * @param threadWorkers workers of the thread backend (0: inline on the submitting thread).
     * @param offload       which requests of the thread backend go to its workers.
     */
    AutoIoEngine(final String uringRefusal, final int threadWorkers, final IoOffload offload)
    {
        this.uringRefusal = uringRefusal;
        this.threads = new ThreadPoolIoEngine(threadWorkers, offload);
    }

    @Override
    public String name()
    {
        return uringRefusal == null ? "auto (io_uring for O_DIRECT files, threads otherwise)" :
            "auto (threads only: io_uring unavailable)";
    }

    /** @return true if the startup probe found io_uring usable. */
    public boolean uringAvailable()
    {
        return uringRefusal == null;
    }

    @Override
    public String choice(final Path path, final FileOptions options)
    {
        if (uringRefusal != null)
        {
            return "threads for " + path + ": io_uring unavailable (" + uringRefusal + ")";
        }
        return options.direct() ?
            "io_uring for " + path + ": O_DIRECT, where io_uring measured ~4x the IOPS at queue depth > 1" :
            "threads for " + path + ": buffered I/O, where io_uring measured no faster (page cache) or slower (tmpfs)";
    }

    @Override
    public BlockDevice open(final Path path, final FileOptions options) throws IOException
    {
        if (uringRefusal == null && options.direct())
        {
            return uring().open(path, options);
        }
        return threads.open(path, options);
    }

    private synchronized UringIoEngine uring() throws IOException
    {
        if (uring == null)
        {
            uring = new UringIoEngine();
        }
        return uring;
    }

    @Override
    public synchronized void close()
    {
        if (uring != null)
        {
            uring.close();
        }
        threads.close();
    }
}
