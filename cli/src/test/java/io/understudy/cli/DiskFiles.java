package io.understudy.cli;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;

/** Disk images for the process tests: made of byte patterns, and checked byte for byte afterwards. */
final class DiskFiles
{
    private DiskFiles()
    {
    }

    /** Writes {@code size} bytes of {@code pattern} to {@code path}, replacing what was there. */
    static void fill(final Path path, final int size, final int pattern) throws IOException
    {
        final byte[] bytes = new byte[size];
        Arrays.fill(bytes, (byte)pattern);
        Files.write(path, bytes);
    }

    /** Fails naming the first byte of {@code [offset, offset + length)} that is not {@code pattern}. */
    static void assertRange(final Path path, final long offset, final int length, final int pattern)
        throws IOException
    {
        final byte[] bytes = new byte[length];
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "r"))
        {
            file.seek(offset);
            file.readFully(bytes);
        }
        for (int i = 0; i < length; i++)
        {
            if ((bytes[i] & 0xff) != pattern)
            {
                throw new AssertionError(path.getFileName() + ": byte at " + (offset + i) + " is 0x" +
                    Integer.toHexString(bytes[i] & 0xff) + ", expected 0x" + Integer.toHexString(pattern));
            }
        }
    }

    /** Fails naming the first offset at which the two files differ (or their lengths if those differ). */
    static void assertSameBytes(final Path expected, final Path actual) throws IOException
    {
        final byte[] a = Files.readAllBytes(expected);
        final byte[] b = Files.readAllBytes(actual);
        if (a.length != b.length)
        {
            throw new AssertionError(expected + " has " + a.length + " bytes, " + actual + " " + b.length);
        }
        final int first = Arrays.mismatch(a, b);
        if (first >= 0)
        {
            throw new AssertionError(expected + " and " + actual + " differ first at byte " + first + ": 0x" +
                Integer.toHexString(a[first] & 0xff) + " vs 0x" + Integer.toHexString(b[first] & 0xff));
        }
    }

    /**
     * Waits (10 s at most) until every byte of {@code path} is zero: overlay storage is given back in the
     * background after make-empty, and punched holes read as zeroes.
     */
    static void awaitAllZero(final Path path) throws IOException, InterruptedException
    {
        final long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (true)
        {
            final byte[] bytes = Files.readAllBytes(path);
            int firstNonZero = -1;
            for (int i = 0; i < bytes.length; i++)
            {
                if (bytes[i] != 0)
                {
                    firstNonZero = i;
                    break;
                }
            }
            if (firstNonZero < 0)
            {
                return;
            }
            if (System.nanoTime() - deadline >= 0)
            {
                throw new AssertionError(path.getFileName() + " still holds data at " + firstNonZero);
            }
            Thread.sleep(50);
        }
    }
}
