package io.understudy.cli.demo;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Compares every byte of a disk image with what the {@link DiskModel} says it must hold, a chunk at a time:
 * the expected bytes are regenerated from the model's stamps, so verifying needs memory for two chunks only.
 */
final class DiskVerifier
{
    private static final int CHUNK_BYTES = 1 << 20;

    private DiskVerifier()
    {
    }

    /** Verifies the image at {@code path}; a file shorter or longer than the model is a difference. */
    static Verification verify(final DiskModel model, final Path path) throws IOException
    {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
            Arena arena = Arena.ofConfined())
        {
            final MemorySegment actual = arena.allocate(CHUNK_BYTES, DiskModel.BLOCK_SIZE);
            final MemorySegment expected = arena.allocate(CHUNK_BYTES, DiskModel.BLOCK_SIZE);
            final ByteBuffer buffer = actual.asByteBuffer();
            long offset = 0;
            while (offset < model.size())
            {
                final int length = (int)Math.min(CHUNK_BYTES, model.size() - offset);
                final int read = readFully(channel, buffer, offset, length);
                final int firstBlock = (int)(offset / DiskModel.BLOCK_SIZE);
                for (int i = 0; i < length / DiskModel.BLOCK_SIZE; i++)
                {
                    model.fillExpected(firstBlock + i, expected, (long)i * DiskModel.BLOCK_SIZE);
                }
                final long mismatch = MemorySegment.mismatch(expected, 0, length, actual, 0, read);
                if (mismatch >= 0)
                {
                    final int wanted = Byte.toUnsignedInt(expected.get(ValueLayout.JAVA_BYTE, mismatch));
                    final int found = mismatch < read ? Byte.toUnsignedInt(actual.get(ValueLayout.JAVA_BYTE, mismatch))
                        : -1;
                    return new Verification(offset + mismatch, offset + mismatch, wanted, found);
                }
                offset += length;
            }
            if (channel.size() > model.size())
            {
                return new Verification(offset, offset, 0, Byte.toUnsignedInt(readByte(channel, offset)));
            }
            return new Verification(offset, -1, 0, 0);
        }
    }

    private static int readFully(
        final FileChannel channel, final ByteBuffer buffer, final long offset, final int length) throws IOException
    {
        buffer.clear().limit(length);
        while (buffer.hasRemaining())
        {
            if (channel.read(buffer, offset + buffer.position()) < 0)
            {
                break;
            }
        }
        return buffer.position();
    }

    private static byte readByte(final FileChannel channel, final long offset) throws IOException
    {
        final ByteBuffer one = ByteBuffer.allocate(1);
        channel.read(one, offset);
        return one.get(0);
    }
}
