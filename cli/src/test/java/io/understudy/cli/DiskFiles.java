package io.understudy.cli;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/** Disk images for the process tests: made of one byte pattern, and checked byte for byte afterwards. */
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
}
