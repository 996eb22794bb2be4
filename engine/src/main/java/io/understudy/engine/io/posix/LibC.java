package io.understudy.engine.io.posix;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The few libc calls the file backends need, bound once through the FFM linker (no JNI, no native
 * library of our own). Linux x86-64/aarch64 ABI.
 * <p>
 * Every call returns the kernel convention: a non-negative result, or a negated errno. errno is captured
 * into a caller-owned {@link ErrnoState} so that hot paths allocate nothing; each thread keeps its own.
 */
public final class LibC
{
    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 2;
    public static final int O_CREAT = 0100;
    public static final int O_EXCL = 0200;
    public static final int O_CLOEXEC = 02000000;
    public static final int O_DIRECT = 040000;

    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;

    public static final int S_IFMT = 0170000;
    public static final int S_IFREG = 0100000;
    public static final int S_IFBLK = 0060000;

    /** BLKGETSIZE64 ioctl: size in bytes of a block device. */
    public static final long BLKGETSIZE64 = 0x80081272L;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(
        java.lang.foreign.MemoryLayout.PathElement.groupElement("errno"));

    private static final MethodHandle OPEN = bind("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), 2);
    private static final MethodHandle CLOSE = bind("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    // The buffer is passed as a raw address (a pointer is a 64-bit integer in the C ABI of every 64-bit Linux
    // target): wrapping it in a MemorySegment per call allocated 40 B/op wherever the JIT did not inline it.
    private static final MethodHandle PREAD = bind("pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG), -1);
    private static final MethodHandle PWRITE = bind("pwrite", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG), -1);
    private static final MethodHandle FSYNC = bind("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle FDATASYNC = bind("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle FALLOCATE = bind("fallocate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), -1);
    private static final MethodHandle LSEEK = bind("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT), -1);
    private static final MethodHandle FTRUNCATE = bind("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), -1);
    private static final MethodHandle IOCTL = bind("ioctl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), 2);
    private static final MethodHandle FSTAT = bindFstat();
    // The two offsets are passed by pointer (loff_t *), as raw addresses into the caller's ErrnoState.
    private static final MethodHandle COPY_FILE_RANGE = bind("copy_file_range",
        FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT), -1);

    private LibC()
    {
    }

    /**
     * Per-thread errno capture buffer, and the in/out offsets of {@link #copyFileRange}. Not thread-safe: one per
     * thread that makes calls.
     */
    public static final class ErrnoState
    {
        final MemorySegment segment;
        final MemorySegment offsets;

        public ErrnoState(final Arena arena)
        {
            segment = arena.allocate(CAPTURE_LAYOUT);
            offsets = arena.allocate(2 * JAVA_LONG.byteSize(), JAVA_LONG.byteAlignment());
        }

        int errno()
        {
            return (int)ERRNO.get(segment, 0L);
        }
    }

    public static int open(final ErrnoState state, final MemorySegment cPath, final int flags, final int mode)
    {
        try
        {
            final int fd = (int)OPEN.invokeExact(state.segment, cPath, flags, mode);
            return fd < 0 ? -state.errno() : fd;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static int close(final ErrnoState state, final int fd)
    {
        try
        {
            final int rc = (int)CLOSE.invokeExact(state.segment, fd);
            return rc < 0 ? -state.errno() : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    /** pread until {@code length} bytes are read or EOF; returns bytes read or -errno. */
    public static long preadFully(
        final ErrnoState state, final int fd, final MemorySegment buffer, final long length, final long offset)
    {
        long done = 0;
        while (done < length)
        {
            final long n = pread(state, fd, buffer.address() + done, length - done, offset + done);
            if (n < 0)
            {
                if (n == -4 /* EINTR */)
                {
                    continue;
                }
                return n;
            }
            if (n == 0)
            {
                break;
            }
            done += n;
        }
        return done;
    }

    /** pwrite until {@code length} bytes are written; returns bytes written or -errno. */
    public static long pwriteFully(
        final ErrnoState state, final int fd, final MemorySegment buffer, final long length, final long offset)
    {
        long done = 0;
        while (done < length)
        {
            final long n = pwrite(state, fd, buffer.address() + done, length - done, offset + done);
            if (n < 0)
            {
                if (n == -4 /* EINTR */)
                {
                    continue;
                }
                return n;
            }
            done += n;
        }
        return done;
    }

    public static long pread(final ErrnoState state, final int fd, final long address, final long length, final long offset)
    {
        try
        {
            final long n = (long)PREAD.invokeExact(state.segment, fd, address, length, offset);
            return n < 0 ? -state.errno() : n;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static long pwrite(final ErrnoState state, final int fd, final long address, final long length, final long offset)
    {
        try
        {
            final long n = (long)PWRITE.invokeExact(state.segment, fd, address, length, offset);
            return n < 0 ? -state.errno() : n;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    /**
     * One copy_file_range(2) call from {@code [inOffset, inOffset + length)} of {@code fdIn} to {@code outOffset} of
     * {@code fdOut}; the kernel may copy less than asked (0 at the end of the input file).
     *
     * @return bytes copied, or -errno.
     */
    public static long copyFileRange(
        final ErrnoState state, final int fdIn, final long inOffset, final int fdOut, final long outOffset,
        final long length)
    {
        state.offsets.set(JAVA_LONG, 0, inOffset);
        state.offsets.set(JAVA_LONG, JAVA_LONG.byteSize(), outOffset);
        final long address = state.offsets.address();
        try
        {
            final long n = (long)COPY_FILE_RANGE.invokeExact(
                state.segment, fdIn, address, fdOut, address + JAVA_LONG.byteSize(), length, 0);
            return n < 0 ? -state.errno() : n;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static int fsync(final ErrnoState state, final int fd)
    {
        try
        {
            final int rc = (int)FSYNC.invokeExact(state.segment, fd);
            return rc < 0 ? -state.errno() : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static int fdatasync(final ErrnoState state, final int fd)
    {
        try
        {
            final int rc = (int)FDATASYNC.invokeExact(state.segment, fd);
            return rc < 0 ? -state.errno() : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static int fallocate(final ErrnoState state, final int fd, final int mode, final long offset, final long length)
    {
        try
        {
            final int rc = (int)FALLOCATE.invokeExact(state.segment, fd, mode, offset, length);
            return rc < 0 ? -state.errno() : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static long lseek(final ErrnoState state, final int fd, final long offset, final int whence)
    {
        try
        {
            final long rc = (long)LSEEK.invokeExact(state.segment, fd, offset, whence);
            return rc < 0 ? -state.errno() : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    public static int ftruncate(final ErrnoState state, final int fd, final long length)
    {
        try
        {
            final int rc = (int)FTRUNCATE.invokeExact(state.segment, fd, length);
            return rc < 0 ? -state.errno() : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    /** @return size in bytes of an open block device, or -errno. */
    public static long blockDeviceSize(final ErrnoState state, final int fd, final Arena arena)
    {
        final MemorySegment out = arena.allocate(JAVA_LONG);
        try
        {
            final int rc = (int)IOCTL.invokeExact(state.segment, fd, BLKGETSIZE64, out);
            return rc < 0 ? -state.errno() : out.get(JAVA_LONG, 0);
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    /**
     * fstat, reduced to the two fields we need.
     *
     * @param out two longs: [0] = st_mode, [1] = st_size.
     * @return 0 or -errno.
     */
    public static int fstat(final ErrnoState state, final int fd, final long[] out, final Arena arena)
    {
        // struct stat is 144 bytes on x86-64 and 128 on aarch64; allocate generously.
        final MemorySegment stat = arena.allocate(256, 8);
        try
        {
            final int rc = (int)FSTAT.invokeExact(state.segment, fd, stat);
            if (rc < 0)
            {
                return -state.errno();
            }
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
        final boolean aarch64 = "aarch64".equals(System.getProperty("os.arch"));
        // x86-64: st_mode at 24 (u32), st_size at 48; aarch64 (generic): st_mode at 16, st_size at 48.
        out[0] = Integer.toUnsignedLong(stat.get(JAVA_INT, aarch64 ? 16 : 24));
        out[1] = stat.get(JAVA_LONG, 48);
        return 0;
    }

    private static MethodHandle bindFstat()
    {
        // glibc >= 2.33 exports fstat; older ones only __fxstat. Debian 12 has 2.36.
        return bind("fstat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), -1);
    }

    /**
     * Binds a libc function with errno capture: its handle takes the errno segment
     * ({@link Linker.Option#captureStateLayout()}) as first argument. Shared with the io_uring syscalls.
     *
     * @param firstVariadicArg index of the first variadic parameter, or -1 for a fixed-arity function.
     */
    public static MethodHandle bind(final String name, final FunctionDescriptor descriptor, final int firstVariadicArg)
    {
        final MemorySegment symbol = LINKER.defaultLookup().find(name)
            .orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol " + name));
        final Linker.Option capture = Linker.Option.captureCallState("errno");
        return firstVariadicArg >= 0 ?
            LINKER.downcallHandle(symbol, descriptor, capture, Linker.Option.firstVariadicArg(firstVariadicArg)) :
            LINKER.downcallHandle(symbol, descriptor, capture);
    }

    /** @return {@code t} as an unchecked exception to throw from a downcall wrapper (errors are rethrown as-is). */
    public static RuntimeException rethrow(final Throwable t)
    {
        if (t instanceof RuntimeException re)
        {
            return re;
        }
        if (t instanceof Error e)
        {
            throw e;
        }
        return new IllegalStateException(t);
    }

}
