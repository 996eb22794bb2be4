package io.understudy.cli;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

/**
 * An open-file-description (OFD) lock held for as long as a daemon uses a file (AX-22): for read-write use an
 * exclusive lock on the whole file; for read-only use shared locks on the bytes of QEMU's locking scheme that say
 * "holds consistent read" (byte 100) and "does not share write / resize" (bytes 201 and 203), so QEMU may open the
 * file read-only alongside, nobody may write it, and a read-write Understudy (whole file) is refused. OFD locks belong to the descriptor this class opens, so the daemon's
 * other descriptors of the same file (its I/O engine's, an overlay's truncation) can be closed without dropping
 * the lock, which would happen with the POSIX locks of {@code FileChannel.tryLock}. QEMU's raw driver takes OFD
 * locks on single bytes of its images and tests them before opening, so while this lock is held {@code qemu-io}
 * and {@code qemu-img} refuse to open the file for writing ("Failed to get ... lock"); a second Understudy is
 * refused by the same lock. The kernel drops the lock when the process dies, so a crash leaves no stale lock.
 *
 * <pre>
 *   struct flock (x86_64 / aarch64 Linux, 32 bytes)
 *    0               2               4               8
 *   +---------------+---------------+---------------+
 *   | l_type  (s16) | l_whence (s16)|  padding      |
 *   +---------------+---------------+---------------+
 *   | l_start (s64): 0, or the QEMU byte            |  8
 *   +-----------------------------------------------+
 *   | l_len   (s64): 0 = to the end of the file, 1  | 16
 *   +-----------------------+-----------------------+
 *   | l_pid   (s32): 0 (OFD)|  padding              | 24
 *   +-----------------------+-----------------------+
 * </pre>
 */
final class DiskLock implements AutoCloseable
{
    private static final int O_RDONLY = 0;
    private static final int O_RDWR = 2;
    private static final int O_CLOEXEC = 0x80000;
    private static final int F_OFD_SETLK = 37;
    private static final short F_RDLCK = 0;
    private static final short F_WRLCK = 1;
    private static final int EAGAIN = 11;
    private static final int EACCES = 13;
    /** QEMU raw driver: byte 100 + n held = permission n in use, 200 + n = permission n not shared. */
    private static final long[] READ_ONLY_BYTES = {100, 201, 203};

    private static final StructLayout FLOCK = MemoryLayout.structLayout(
        ValueLayout.JAVA_SHORT.withName("l_type"),
        ValueLayout.JAVA_SHORT.withName("l_whence"),
        MemoryLayout.paddingLayout(4),
        ValueLayout.JAVA_LONG.withName("l_start"),
        ValueLayout.JAVA_LONG.withName("l_len"),
        ValueLayout.JAVA_INT.withName("l_pid"),
        MemoryLayout.paddingLayout(4));
    private static final VarHandle L_TYPE = FLOCK.varHandle(MemoryLayout.PathElement.groupElement("l_type"));
    private static final VarHandle L_START = FLOCK.varHandle(MemoryLayout.PathElement.groupElement("l_start"));
    private static final VarHandle L_LEN = FLOCK.varHandle(MemoryLayout.PathElement.groupElement("l_len"));

    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final MethodHandle OPEN;
    private static final MethodHandle FCNTL;
    private static final MethodHandle CLOSE;

    static
    {
        final Linker linker = Linker.nativeLinker();
        final Linker.Option errno = Linker.Option.captureCallState("errno");
        OPEN = linker.downcallHandle(linker.defaultLookup().findOrThrow("open"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT), errno);
        FCNTL = linker.downcallHandle(linker.defaultLookup().findOrThrow("fcntl"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                ValueLayout.ADDRESS), errno, Linker.Option.firstVariadicArg(2));
        CLOSE = linker.downcallHandle(linker.defaultLookup().findOrThrow("close"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
    }

    private final int fd;

    private DiskLock(final int fd)
    {
        this.fd = fd;
    }

    /**
     * Locks {@code path} or fails at once (never waits: a daemon that would start later is worse than one that
     * says why it cannot start).
     *
     * @param path      the file to lock; must exist.
     * @param exclusive true for read-write use (nobody else may open it, even read-only through QEMU), false for
     *                  read-only use (others may read, nobody may write).
     * @throws UserException naming the file when it is in use or cannot be opened.
     */
    static DiskLock acquire(final Path path, final boolean exclusive)
    {
        try (Arena arena = Arena.ofConfined())
        {
            final MemorySegment state = arena.allocate(CAPTURE);
            final int fd = (int)OPEN.invokeExact(state, arena.allocateFrom(path.toString()),
                (exclusive ? O_RDWR : O_RDONLY) | O_CLOEXEC);
            if (fd < 0)
            {
                throw new UserException(path + ": cannot open to lock it (errno " + (int)ERRNO.get(state, 0L) + ")");
            }
            final MemorySegment flock = arena.allocate(FLOCK);
            L_TYPE.set(flock, 0L, exclusive ? F_WRLCK : F_RDLCK);
            int result = 0;
            if (exclusive)
            {
                result = (int)FCNTL.invokeExact(state, fd, F_OFD_SETLK, flock);
            }
            for (int i = 0; !exclusive && i < READ_ONLY_BYTES.length && result == 0; i++)
            {
                L_START.set(flock, 0L, READ_ONLY_BYTES[i]);
                L_LEN.set(flock, 0L, 1L);
                result = (int)FCNTL.invokeExact(state, fd, F_OFD_SETLK, flock);
            }
            if (result < 0)
            {
                final int errno = (int)ERRNO.get(state, 0L);
                final int _ = (int)CLOSE.invokeExact(fd);
                throw new UserException(path + (errno == EAGAIN || errno == EACCES ? ": in use by another process " +
                    "(locked); stop it first, " + (exclusive ? "two writers would corrupt the disk" :
                    "a reader would see the disk change under it") : ": cannot lock (errno " + errno + ")"));
            }
            return new DiskLock(fd);
        }
        catch (final UserException e)
        {
            throw e;
        }
        catch (final Throwable t)
        {
            throw new IllegalStateException("open/fcntl downcall failed", t);
        }
    }

    /** Releases the lock by closing its descriptor. */
    @Override
    public void close()
    {
        try
        {
            final int _ = (int)CLOSE.invokeExact(fd);
        }
        catch (final Throwable t)
        {
            throw new IllegalStateException("close downcall failed", t);
        }
    }
}
