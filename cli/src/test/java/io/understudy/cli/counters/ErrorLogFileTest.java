package io.understudy.cli.counters;

import org.agrona.concurrent.errors.DistinctErrorLog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ErrorLogFileTest
{
    private static final long START = 1_790_000_000_000L;

    @TempDir
    Path dir;

    record Entry(int count, long firstMs, long lastMs, String error)
    {
    }

    @Test
    void distinctErrorsAreKeptOnceWithCountsAndFirstAndLastTimes()
    {
        final Path path = dir.resolve("d.errors");
        final AtomicLong clock = new AtomicLong(START);
        try (ErrorLogFile log = ErrorLogFile.create(path, DaemonRole.SECONDARY, ErrorLogFile.DEFAULT_CAPACITY, START))
        {
            final DistinctErrorLog writer = log.newWriter(clock::get);
            final IOException same = new IOException("connection reset");
            assertTrue(writer.record(same));
            clock.addAndGet(500);
            assertTrue(writer.record(new IllegalStateException("slot leaked")));
            clock.addAndGet(500);
            assertTrue(writer.record(same));
        }
        try (ErrorLogFile reader = ErrorLogFile.open(path))
        {
            assertEquals(DaemonRole.SECONDARY, reader.role());
            assertEquals(ProcessHandle.current().pid(), reader.pid());
            assertEquals(START, reader.startTimeMs());
            final List<Entry> entries = new ArrayList<>();
            assertEquals(2, reader.read((count, first, last, error) -> entries.add(new Entry(count, first, last,
                error))));
            assertEquals(2, entries.get(0).count());
            assertEquals(START, entries.get(0).firstMs());
            assertEquals(START + 1000, entries.get(0).lastMs());
            assertTrue(entries.get(0).error().startsWith("java.io.IOException: connection reset"),
                entries.get(0).error());
            assertTrue(entries.get(0).error().contains("ErrorLogFileTest"), "the stack trace is kept");
            assertEquals(1, entries.get(1).count());
            assertEquals(START + 500, entries.get(1).firstMs());
            assertTrue(entries.get(1).error().startsWith("java.lang.IllegalStateException: slot leaked"),
                entries.get(1).error());
        }
    }

    @Test
    void anEmptyLogReadsAsNoErrors()
    {
        final Path path = dir.resolve("empty.errors");
        ErrorLogFile.create(path, DaemonRole.SERVE, 4096, START).close();
        try (ErrorLogFile reader = ErrorLogFile.open(path))
        {
            assertEquals(0, reader.read((count, first, last, error) -> { }));
        }
    }

    @Test
    void refusesWhatIsNotAnErrorLog() throws IOException
    {
        assertEquals(MappedFileException.Reason.MISSING, refused(dir.resolve("none")).reason());
        final Path counters = dir.resolve("d.counters");
        CountersFile.create(counters, DaemonRole.PRIMARY, false, START).close();
        assertEquals(MappedFileException.Reason.NOT_OURS, refused(counters).reason());
        final Path shortFile = dir.resolve("short");
        Files.write(shortFile, new byte[16]);
        assertEquals(MappedFileException.Reason.TRUNCATED, refused(shortFile).reason());
        assertThrows(IllegalArgumentException.class,
            () -> ErrorLogFile.create(dir.resolve("odd"), DaemonRole.SERVE, 100, START));
    }

    private static MappedFileException refused(final Path path)
    {
        return assertThrows(MappedFileException.class, () -> ErrorLogFile.open(path));
    }
}
