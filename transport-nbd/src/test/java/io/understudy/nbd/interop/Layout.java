package io.understudy.nbd.interop;

import io.understudy.engine.device.BlockDevice;
import io.understudy.nbd.client.NbdClientDevice;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The contents of a disk as runs of one byte value, e.g. {@code [0,16M)=11 [16M,17M)=55 [17M,64M)=11}: an exact
 * description of every byte (two layouts are equal exactly when the bytes are) that stays readable in an
 * assertion message. Expected layouts are painted like the writes that made them; actual ones are read from
 * files or devices.
 */
final class Layout
{
    private static final int CHUNK = 1 << 20;
    private static final int MAX_DESCRIBED_RUNS = 64;

    private final long size;
    /** Run i covers [starts[i], starts[i + 1]) (the last one up to size) and holds values[i]. */
    private final List<Long> starts = new ArrayList<>();
    private final List<Integer> values = new ArrayList<>();

    private Layout(final long size)
    {
        this.size = size;
    }

    /** A disk of {@code size} bytes all equal to {@code pattern}. */
    static Layout filled(final long size, final int pattern)
    {
        final Layout layout = new Layout(size);
        layout.starts.add(0L);
        layout.values.add(pattern & 0xff);
        return layout;
    }

    /** Reads every byte of {@code file}. */
    static Layout of(final Path file) throws IOException
    {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ))
        {
            final Layout layout = new Layout(channel.size());
            final ByteBuffer buffer = ByteBuffer.allocateDirect(CHUNK);
            for (long offset = 0; offset < layout.size; )
            {
                buffer.clear();
                final int read = channel.read(buffer, offset);
                if (read <= 0)
                {
                    throw new IOException("short read of " + file + " at " + offset);
                }
                layout.append(offset, MemorySegment.ofBuffer(buffer.flip()), read);
                offset += read;
            }
            return layout;
        }
    }

    /** Reads every byte of {@code device} (e.g. an NBD export through {@link NbdClientDevice}). */
    static Layout of(final BlockDevice device)
    {
        final Layout layout = new Layout(device.size());
        try (Arena arena = Arena.ofShared())
        {
            final MemorySegment buffer = arena.allocate(CHUNK, 4096);
            for (long offset = 0; offset < layout.size; offset += CHUNK)
            {
                final long at = offset;
                final int length = (int)Math.min(CHUNK, layout.size - offset);
                assertEquals(length, InteropFixture.run((c, k) -> device.read(at, buffer, length, c, k)),
                    "read of " + length + " at " + at);
                layout.append(offset, buffer, length);
            }
        }
        return layout;
    }

    /** Extends the runs by the next {@code length} bytes of the disk, at {@code offset}. */
    private void append(final long offset, final MemorySegment bytes, final int length)
    {
        int current = values.isEmpty() ? -1 : values.getLast();
        for (int i = 0; i < length; i++)
        {
            final int value = bytes.get(ValueLayout.JAVA_BYTE, i) & 0xff;
            if (value != current)
            {
                starts.add(offset + i);
                values.add(value);
                current = value;
            }
        }
    }

    /** Paints {@code [offset, offset + length)} with {@code pattern}, as a write would. */
    Layout paint(final long offset, final long length, final int pattern)
    {
        final long end = offset + length;
        final int after = valueAt(end);
        for (int i = starts.size() - 1; i >= 0; i--)
        {
            if (starts.get(i) >= offset && starts.get(i) < end)
            {
                starts.remove(i);
                values.remove(i);
            }
        }
        int insert = 0;
        while (insert < starts.size() && starts.get(insert) < offset)
        {
            insert++;
        }
        starts.add(insert, offset);
        values.add(insert, pattern & 0xff);
        if (end < size && (insert + 1 >= starts.size() || starts.get(insert + 1) != end))
        {
            starts.add(insert + 1, end);
            values.add(insert + 1, after);
        }
        merge();
        return this;
    }

    /** Asserts the bytes of {@code file} are exactly this layout. */
    void assertFile(final Path file, final String what) throws IOException
    {
        assertSame(of(file), file.toString(), what);
    }

    /** Asserts the bytes of {@code device} are exactly this layout. */
    void assertDevice(final BlockDevice device, final String name, final String what)
    {
        assertSame(of(device), name, what);
    }

    private void assertSame(final Layout actual, final String file, final String what)
    {
        if (actual.size != size || !actual.starts.equals(starts) || !actual.values.equals(values))
        {
            assertEquals(toString(), actual.toString(), what + ": " + file);
            fail(what + ": " + file + " differs beyond the described runs: " + actual);
        }
    }

    private int valueAt(final long offset)
    {
        int value = -1;
        for (int i = 0; i < starts.size() && starts.get(i) <= offset; i++)
        {
            value = values.get(i);
        }
        return value;
    }

    private void merge()
    {
        for (int i = starts.size() - 1; i > 0; i--)
        {
            if (values.get(i).equals(values.get(i - 1)))
            {
                starts.remove(i);
                values.remove(i);
            }
        }
    }

    /** Runs as {@code [start,end)=vv}, offsets as {@code 40M+64K}; after 64 runs only their count. */
    @Override
    public String toString()
    {
        final StringBuilder out = new StringBuilder();
        for (int i = 0; i < starts.size(); i++)
        {
            if (i == MAX_DESCRIBED_RUNS)
            {
                out.append(" ... ").append(starts.size() - i).append(" more runs, ").append(starts.size())
                    .append(" in all");
                break;
            }
            final long end = i + 1 < starts.size() ? starts.get(i + 1) : size;
            out.append(i == 0 ? "" : " ").append('[').append(offset(starts.get(i))).append(',').append(offset(end))
                .append(")=").append(String.format("%02x", values.get(i)));
        }
        return out.toString();
    }

    private static String offset(final long offset)
    {
        final long mib = offset >> 20;
        final long rest = offset & ((1 << 20) - 1);
        if (rest == 0)
        {
            return mib + (mib == 0 ? "" : "M");
        }
        final String low = rest % 1024 == 0 ? (rest >> 10) + "K" : Long.toString(rest);
        return mib == 0 ? low : mib + "M+" + low;
    }
}
