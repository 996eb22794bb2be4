package io.understudy.engine.overlay;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.CopyOffload;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.IoCompletion;
import io.understudy.engine.io.FileOptions;
import io.understudy.engine.io.IoEngine;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.function.UnaryOperator;

/**
 * Overlay storage in a sparse file, served by an {@link IoEngine}: clusters sit at their disk offsets, so the
 * file only grows where the overlay holds data, and {@link #release} punches holes (discard). A tmpfs path
 * (e.g. under /dev/shm) gives memory speed with the file system doing the space accounting.
 */
public final class FileOverlayStorage implements OverlayStorage
{
    private final BlockDevice file;

    /** Wraps an open file device; the storage owns it from now on. */
    public FileOverlayStorage(final BlockDevice file)
    {
        this.file = file;
    }

    /**
     * Creates (or truncates) a sparse file of {@code size} bytes at {@code path} and opens it through
     * {@code engine}.
     */
    public static FileOverlayStorage create(
        final IoEngine engine, final Path path, final long size, final FileOptions options) throws IOException
    {
        return create(engine, path, size, options, UnaryOperator.identity());
    }

    /**
     * As {@link #create(IoEngine, Path, long, FileOptions)}, with the opened file passed through {@code decorator}
     * (e.g. a fault-injecting wrapper) before the storage takes it.
     */
    public static FileOverlayStorage create(
        final IoEngine engine, final Path path, final long size, final FileOptions options,
        final UnaryOperator<BlockDevice> decorator) throws IOException
    {
        try (RandomAccessFile raf = new RandomAccessFile(path.toFile(), "rw"))
        {
            raf.setLength(0);
            raf.setLength(size);
        }
        return new FileOverlayStorage(decorator.apply(engine.open(path, options)));
    }

    @Override
    public long size()
    {
        return file.size();
    }

    @Override
    public int alignment()
    {
        return file.alignment();
    }

    @Override
    public boolean read(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return file.read(offset, buffer, length, completion, cookie);
    }

    @Override
    public boolean write(
        final long offset, final MemorySegment buffer, final int length, final IoCompletion completion, final long cookie)
    {
        return file.write(offset, buffer, length, 0, completion, cookie);
    }

    @Override
    public boolean release(final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        return file.discard(offset, length, completion, cookie);
    }

    @Override
    public boolean canCopyFrom(final BlockDevice source)
    {
        return file instanceof CopyOffload copies && copies.canCopyFrom(source);
    }

    @Override
    public boolean copyFrom(
        final BlockDevice source, final long offset, final long length, final IoCompletion completion, final long cookie)
    {
        if (file instanceof CopyOffload copies)
        {
            return copies.copyFrom(source, offset, length, completion, cookie);
        }
        completion.onComplete(cookie, -Errno.EOPNOTSUPP);
        return true;
    }

    @Override
    public boolean flush(final IoCompletion completion, final long cookie)
    {
        return file.flush(completion, cookie);
    }

    @Override
    public void close()
    {
        file.close();
    }
}
