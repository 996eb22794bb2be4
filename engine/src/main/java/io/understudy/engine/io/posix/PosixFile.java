package io.understudy.engine.io.posix;

import io.understudy.engine.device.BlockDevice;
import io.understudy.engine.device.Errno;
import io.understudy.engine.device.ExtentSink;
import io.understudy.engine.io.FileOptions;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * An open file descriptor on a regular file or block device, with the synchronous operations both I/O
 * backends share: blocking execution of each request type (used by the thread-pool backend, and by the
 * io_uring backend for operations it does not ring) and allocation queries through SEEK_DATA/SEEK_HOLE.
 * <p>
 * Methods taking an {@link LibC.ErrnoState} may be called concurrently from several threads, each with
 * its own state.
 */
public final class PosixFile implements AutoCloseable
{
    /** Largest write issued when zeroes must be written out (no fallocate support, or NO_HOLE fallback). */
    private static final int ZERO_CHUNK = 1 << 20;
    private static final MemorySegment ZEROES = Arena.global().allocate(ZERO_CHUNK, 4096);
    private static final int ENXIO = 6;

    private final Path path;
    private final int fd;
    private final long size;
    private final boolean blockDevice;
    private final boolean readOnly;
    private final boolean direct;
    private volatile boolean closed;
    private boolean fdClosed;

    private PosixFile(
        final Path path, final int fd, final long size, final boolean blockDevice, final boolean readOnly,
        final boolean direct)
    {
        this.path = path;
        this.fd = fd;
        this.size = size;
        this.blockDevice = blockDevice;
        this.readOnly = readOnly;
        this.direct = direct;
    }

    /**
     * Opens an existing regular file or block device.
     *
     * @throws IOException naming the file and the reason.
     */
    public static PosixFile open(final Path path, final FileOptions options) throws IOException
    {
        try (Arena arena = Arena.ofConfined())
        {
            final LibC.ErrnoState state = new LibC.ErrnoState(arena);
            int flags = (options.readOnly() ? LibC.O_RDONLY : LibC.O_RDWR) | LibC.O_CLOEXEC;
            if (options.direct())
            {
                flags |= LibC.O_DIRECT;
            }
            final int fd = LibC.open(state, arena.allocateFrom(path.toString()), flags, 0);
            if (fd < 0)
            {
                throw new IOException(path + ": cannot open" + (options.direct() ? " with O_DIRECT" : "") +
                    " (" + Errno.name(fd) + describe(fd) + ")");
            }
            final long[] stat = new long[2];
            final int rc = LibC.fstat(state, fd, stat, arena);
            if (rc < 0)
            {
                LibC.close(state, fd);
                throw new IOException(path + ": cannot stat (" + Errno.name(rc) + ")");
            }
            final long type = stat[0] & LibC.S_IFMT;
            final long size;
            if (type == LibC.S_IFREG)
            {
                size = stat[1];
            }
            else if (type == LibC.S_IFBLK)
            {
                size = LibC.blockDeviceSize(state, fd, arena);
                if (size < 0)
                {
                    LibC.close(state, fd);
                    throw new IOException(path + ": cannot read block device size (" + Errno.name((int)size) + ")");
                }
            }
            else
            {
                LibC.close(state, fd);
                throw new IOException(path + ": not a regular file or block device");
            }
            return new PosixFile(path, fd, size, type == LibC.S_IFBLK, options.readOnly(), options.direct());
        }
    }

    private static String describe(final int negErrno)
    {
        return switch (-negErrno)
        {
            case Errno.ENOENT -> ": no such file";
            case Errno.EACCES, Errno.EPERM -> ": permission denied";
            case Errno.EISDIR -> ": is a directory";
            case Errno.EROFS -> ": read-only file system";
            case Errno.EINVAL -> ": O_DIRECT not supported here?";
            default -> "";
        };
    }

    public Path path()
    {
        return path;
    }

    public int fd()
    {
        return fd;
    }

    public long size()
    {
        return size;
    }

    public boolean isReadOnly()
    {
        return readOnly;
    }

    public boolean isDirect()
    {
        return direct;
    }

    public boolean isBlockDevice()
    {
        return blockDevice;
    }

    /** O_DIRECT needs sector-aligned buffers, offsets and lengths; buffered I/O takes any. */
    public int alignment()
    {
        return direct ? 4096 : 1;
    }

    /**
     * Checks a request against the device, as the {@link BlockDevice} contract says.
     *
     * @return 0 if the request may proceed, else the negated errno to complete it with.
     */
    public int validate(final int op, final long offset, final long length, final int flags)
    {
        if (closed)
        {
            return -Errno.ESHUTDOWN;
        }
        final boolean writeType = op == Op.WRITE || op == Op.DISCARD || op == Op.WRITE_ZEROES || op == Op.COPY;
        if (writeType && readOnly)
        {
            return -Errno.EPERM;
        }
        if (op == Op.FLUSH)
        {
            return 0;
        }
        if (offset < 0 || length < 0 || offset > size || length > size - offset)
        {
            return op == Op.WRITE || op == Op.WRITE_ZEROES || op == Op.COPY ? -Errno.ENOSPC : -Errno.EINVAL;
        }
        final int alignment = alignment();
        if (alignment > 1 && (op == Op.READ || op == Op.WRITE) && ((offset | length) & (alignment - 1)) != 0)
        {
            return -Errno.EINVAL;
        }
        return 0;
    }

    /** Reads {@code length} bytes; a file shortened behind our back reads as zeroes past its end. */
    public int read(final LibC.ErrnoState state, final long offset, final MemorySegment buffer, final int length)
    {
        final long n = LibC.preadFully(state, fd, buffer, length, offset);
        if (n < 0)
        {
            return (int)n;
        }
        if (n < length)
        {
            buffer.asSlice(n, length - n).fill((byte)0);
        }
        return length;
    }

    public int write(
        final LibC.ErrnoState state, final long offset, final MemorySegment buffer, final int length, final int flags)
    {
        final long n = LibC.pwriteFully(state, fd, buffer, length, offset);
        if (n < 0)
        {
            return mapSpace((int)n);
        }
        if ((flags & BlockDevice.FLAG_FUA) != 0)
        {
            final int rc = LibC.fdatasync(state, fd);
            if (rc < 0)
            {
                return rc;
            }
        }
        return length;
    }

    /**
     * Makes {@code [offset, offset + length)} hold what the same range of {@code source} holds, with
     * copy_file_range(2): a file system with shared extents (XFS with reflink, btrfs) shares the blocks, others copy
     * in the kernel; the bytes never reach user space. Past the end of a source shortened behind our back the range
     * reads as zeroes, as {@link #read} has it.
     *
     * @return 0, or -errno: EXDEV, EOPNOTSUPP, ENOSYS or EINVAL when the kernel cannot copy between these two
     * files (different file systems, a block device), which the caller answers by copying through memory.
     */
    public int copyFrom(final LibC.ErrnoState state, final PosixFile source, final long offset, final long length)
    {
        long done = 0;
        while (done < length)
        {
            final long n = LibC.copyFileRange(state, source.fd, offset + done, fd, offset + done, length - done);
            if (n == -4 /* EINTR */)
            {
                continue;
            }
            if (n < 0)
            {
                return mapSpace((int)n);
            }
            if (n == 0)
            {
                return writeZeroes(state, offset + done, length - done, 0);
            }
            done += n;
        }
        return 0;
    }

    public int flush(final LibC.ErrnoState state)
    {
        return LibC.fdatasync(state, fd);
    }

    /** Punches a hole; where the file system cannot, discard is a successful no-op (it is only a hint). */
    public int discard(final LibC.ErrnoState state, final long offset, final long length)
    {
        if (length == 0)
        {
            return 0;
        }
        final int rc = LibC.fallocate(
            state, fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
        return rc == -Errno.EOPNOTSUPP || rc == -Errno.ENOSYS ? 0 : rc;
    }

    /**
     * Makes the range read as zeroes: a hole punch when allowed, else ZERO_RANGE (stays allocated), else
     * written zeroes. With FAST_ZERO, fails with ENOTSUP instead of writing zeroes, leaving data unchanged.
     */
    public int writeZeroes(final LibC.ErrnoState state, final long offset, final long length, final int flags)
    {
        if (length == 0)
        {
            return 0;
        }
        int rc = -Errno.EOPNOTSUPP;
        if ((flags & BlockDevice.FLAG_NO_HOLE) == 0)
        {
            rc = LibC.fallocate(state, fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
        }
        if (isUnsupported(rc))
        {
            rc = LibC.fallocate(state, fd, LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
        }
        if (isUnsupported(rc))
        {
            if ((flags & BlockDevice.FLAG_FAST_ZERO) != 0)
            {
                return -Errno.ENOTSUP;
            }
            rc = writeZeroBuffers(state, offset, length);
        }
        if (rc < 0)
        {
            return mapSpace(rc);
        }
        if ((flags & BlockDevice.FLAG_FUA) != 0)
        {
            return LibC.fdatasync(state, fd);
        }
        return 0;
    }

    /** @return true if hole punching or zero-range can serve FAST_ZERO on this file. */
    public boolean canFastZero()
    {
        return !direct || !blockDevice;
    }

    private int writeZeroBuffers(final LibC.ErrnoState state, final long offset, final long length)
    {
        long done = 0;
        while (done < length)
        {
            final long chunk = Math.min(ZERO_CHUNK, length - done);
            final long n = LibC.pwriteFully(state, fd, ZEROES, chunk, offset + done);
            if (n < 0)
            {
                return (int)n;
            }
            done += chunk;
        }
        return 0;
    }

    private static boolean isUnsupported(final int rc)
    {
        return rc == -Errno.EOPNOTSUPP || rc == -Errno.ENOSYS || rc == -Errno.EINVAL;
    }

    /** EDQUOT and EFBIG mean "no space" to a block device user. */
    private static int mapSpace(final int rc)
    {
        return rc == -Errno.EDQUOT || rc == -Errno.EFBIG ? -Errno.ENOSPC : rc;
    }

    /**
     * Walks allocation with SEEK_DATA/SEEK_HOLE. Holes read as zeroes. Where the file system cannot tell,
     * the whole range is reported as data, which is always correct.
     */
    public long blockStatus(final LibC.ErrnoState state, final long offset, final long length, final ExtentSink sink)
    {
        final int valid = validate(Op.READ, offset, length, 0);
        if (valid < 0)
        {
            return valid;
        }
        final long end = offset + length;
        long position = offset;
        while (position < end)
        {
            long data = LibC.lseek(state, fd, position, LibC.SEEK_DATA);
            if (data == -ENXIO)
            {
                data = end; // no data from here to the end of the file
            }
            else if (data < 0)
            {
                sink.onExtent(end - position, 0); // cannot tell: data is the safe answer
                return length;
            }
            if (data > position)
            {
                final long holeEnd = Math.min(data, end);
                final boolean more = sink.onExtent(holeEnd - position, ExtentSink.HOLE | ExtentSink.ZERO);
                final long described = holeEnd - offset;
                position = holeEnd;
                if (!more)
                {
                    return described;
                }
                continue;
            }
            long hole = LibC.lseek(state, fd, position, LibC.SEEK_HOLE);
            if (hole < 0 || hole > end)
            {
                hole = end;
            }
            final boolean more = sink.onExtent(hole - position, 0);
            position = hole;
            if (!more)
            {
                return position - offset;
            }
        }
        return length;
    }

    /**
     * Refuses new requests (they fail with ESHUTDOWN) but keeps the descriptor open for those in flight.
     *
     * @return false if it was already marked.
     */
    public boolean markClosed()
    {
        if (closed)
        {
            return false;
        }
        closed = true;
        return true;
    }

    /** Closes the descriptor: call only once no request is in flight on it. */
    @Override
    public void close()
    {
        closed = true;
        if (fdClosed)
        {
            return;
        }
        fdClosed = true;
        try (Arena arena = Arena.ofConfined())
        {
            LibC.close(new LibC.ErrnoState(arena), fd);
        }
    }
}
