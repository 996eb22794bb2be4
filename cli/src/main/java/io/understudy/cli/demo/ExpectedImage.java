package io.understudy.cli.demo;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes a disk image holding exactly what the {@link DiskModel} expects: before the first write that is the
 * initial content (stamp 0) every disk of the demo starts from, so primary and secondary start identical.
 */
final class ExpectedImage
{
    private static final int CHUNK_BYTES = 1 << 20;

    private ExpectedImage()
    {
    }

    /** Creates or truncates {@code path} to the model's size and fills it. */
    static void write(final DiskModel model, final Path path) throws IOException
    {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING);
            Arena arena = Arena.ofConfined())
        {
            final MemorySegment chunk = arena.allocate(CHUNK_BYTES, DiskModel.BLOCK_SIZE);
            final ByteBuffer buffer = chunk.asByteBuffer();
            long offset = 0;
            while (offset < model.size())
            {
                final int length = (int)Math.min(CHUNK_BYTES, model.size() - offset);
                final int firstBlock = (int)(offset / DiskModel.BLOCK_SIZE);
                for (int i = 0; i < length / DiskModel.BLOCK_SIZE; i++)
                {
                    model.fillExpected(firstBlock + i, chunk, (long)i * DiskModel.BLOCK_SIZE);
                }
                buffer.clear().limit(length);
                while (buffer.hasRemaining())
                {
                    channel.write(buffer, offset + buffer.position());
                }
                offset += length;
            }
        }
    }
}
