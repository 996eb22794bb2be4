package io.understudy.engine.io.uring;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static io.understudy.engine.io.posix.LibC.bind;
import static io.understudy.engine.io.posix.LibC.rethrow;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The raw kernel calls an io_uring needs, bound once through the FFM linker: the three io_uring syscalls
 * through libc's variadic {@code syscall} (no liburing, no JNI), plus mmap/munmap for the rings and an
 * eventfd for waking the ring agent. Linux x86-64 syscall numbers.
 * <p>
 * Every call returns the kernel convention: a non-negative result or a negated errno. errno is captured
 * into a caller-owned segment of {@link #ERRNO_LAYOUT} (one per thread) so that no call allocates.
 * {@code io_uring_enter} may block in the kernel, so no handle is bound as a critical (safepoint-blocking)
 * call.
 */
final class UringSyscalls
{
    static final long SYS_IO_URING_SETUP = 425;
    static final long SYS_IO_URING_ENTER = 426;
    static final long SYS_IO_URING_REGISTER = 427;

    static final int IORING_ENTER_GETEVENTS = 1;
    static final int IORING_REGISTER_BUFFERS = 0;
    static final int IORING_FEAT_SINGLE_MMAP = 1;
    static final long IORING_OFF_SQ_RING = 0L;
    static final long IORING_OFF_CQ_RING = 0x8000000L;
    static final long IORING_OFF_SQES = 0x10000000L;

    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int EBUSY = 16;

    private static final int PROT_READ = 1;
    private static final int PROT_WRITE = 2;
    private static final int MAP_SHARED = 1;
    private static final int MAP_POPULATE = 0x8000;
    private static final int EFD_CLOEXEC = 02000000;

    /** Layout of the errno capture segment each calling thread owns. */
    static final StructLayout ERRNO_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
        ERRNO_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private static final Linker LINKER = Linker.nativeLinker();
    /** long syscall(long number, ...): every variadic argument passed as a long, as the x86-64 ABI promotes. */
    private static final MethodHandle SYSCALL4 = bind(
        "syscall", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG), 1);
    private static final MethodHandle SYSCALL6 = bind(
        "syscall",
        FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
        1);
    private static final MethodHandle MMAP = bind(
        "mmap", FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG), -1);
    private static final MethodHandle MUNMAP = bind(
        "munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), -1);
    private static final MethodHandle EVENTFD = bind(
        "eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), -1);
    /** Bound without errno capture: any thread may signal, and a failed signal has no errno worth reading. */
    private static final MethodHandle WRITE = LINKER.downcallHandle(
        LINKER.defaultLookup().find("write").orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol write")),
        FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle CLOSE = bind(
        "close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);

    private UringSyscalls()
    {
    }

    /** @return the ring fd, or -errno. {@code params} is the 120-byte io_uring_params, filled in by the kernel. */
    static int setup(final MemorySegment errno, final int entries, final MemorySegment params)
    {
        return (int)syscall4(errno, SYS_IO_URING_SETUP, entries, params.address(), 0, 0);
    }

    /** @return SQEs consumed, or -errno. Blocks when GETEVENTS asks for {@code minComplete > 0}. */
    static int enter(
        final MemorySegment errno, final int ringFd, final int toSubmit, final int minComplete, final int flags)
    {
        try
        {
            final long rc = (long)SYSCALL6.invokeExact(
                errno, SYS_IO_URING_ENTER, (long)ringFd, (long)toSubmit, (long)minComplete, (long)flags, 0L, 0L);
            return (int)(rc < 0 ? -errno(errno) : rc);
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    static int register(
        final MemorySegment errno, final int ringFd, final int opcode, final MemorySegment arg, final int count)
    {
        return (int)syscall4(errno, SYS_IO_URING_REGISTER, ringFd, opcode, arg.address(), count);
    }

    /** @return the mapping, sized {@code length}, or {@link MemorySegment#NULL} with errno left in {@code errno}. */
    static MemorySegment mmapRing(final MemorySegment errno, final int ringFd, final long length, final long offset)
    {
        try
        {
            final MemorySegment address = (MemorySegment)MMAP.invokeExact(
                errno, MemorySegment.NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd, offset);
            // MAP_FAILED is (void *)-1.
            return address.address() == -1L ? MemorySegment.NULL : address.reinterpret(length);
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    static int munmap(final MemorySegment errno, final MemorySegment mapping)
    {
        try
        {
            final int rc = (int)MUNMAP.invokeExact(errno, mapping, mapping.byteSize());
            return rc < 0 ? -errno(errno) : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    static int eventfd(final MemorySegment errno)
    {
        try
        {
            final int rc = (int)EVENTFD.invokeExact(errno, 0, EFD_CLOEXEC);
            return rc < 0 ? -errno(errno) : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    /**
     * Adds the 8-byte counter held in {@code value} to an eventfd. Callable from any thread with a shared,
     * read-only {@code value}; it cannot block while the counter stays far below its 2^64 - 1 limit.
     *
     * @return 8, or -1 if the eventfd is gone.
     */
    static long signal(final int fd, final MemorySegment value)
    {
        try
        {
            return (long)WRITE.invokeExact(fd, value, value.byteSize());
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    static int close(final MemorySegment errno, final int fd)
    {
        try
        {
            final int rc = (int)CLOSE.invokeExact(errno, fd);
            return rc < 0 ? -errno(errno) : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }

    static int errno(final MemorySegment errno)
    {
        return (int)ERRNO.get(errno, 0L);
    }

    private static long syscall4(
        final MemorySegment errno, final long number, final long a, final long b, final long c, final long d)
    {
        try
        {
            final long rc = (long)SYSCALL4.invokeExact(errno, number, a, b, c, d);
            return rc < 0 ? -errno(errno) : rc;
        }
        catch (final Throwable t)
        {
            throw rethrow(t);
        }
    }
}
