package io.understudy.cli.counters;

import org.agrona.concurrent.status.AtomicCounter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CountersFileTest
{
    private static final long START = 1_790_000_000_000L;

    @TempDir
    Path dir;

    @Test
    void aReaderSeesTheHeaderCountersAndHeartbeatTheDaemonWrote()
    {
        final Path path = dir.resolve("d.counters");
        try (CountersFile writer = CountersFile.create(path, DaemonRole.PRIMARY, true, START))
        {
            final AtomicCounter epoch = writer.manager().newCounter(CounterType.EPOCH.label(),
                CounterType.EPOCH.typeId());
            final AtomicCounter inFlight = writer.manager().newCounter(CounterType.NBD_IN_FLIGHT.label("pvm"),
                CounterType.NBD_IN_FLIGHT.typeId());
            epoch.setRelease(7);
            inFlight.setRelease(3);
            writer.heartbeat(START + 1234);

            try (CountersFile reader = CountersFile.open(path))
            {
                assertEquals(CountersFile.VERSION, reader.version());
                assertEquals(DaemonRole.PRIMARY, reader.role());
                assertTrue(reader.shared());
                assertEquals(ProcessHandle.current().pid(), reader.pid());
                assertEquals(START, reader.startTimeMs());
                assertEquals(START + 1234, reader.heartbeatMs());
                final List<String> seen = new ArrayList<>();
                reader.reader().forEach((value, id, label) -> seen.add(label + "=" + value + "/" +
                    reader.reader().getCounterTypeId(id)));
                assertEquals(List.of("epoch=7/2", "nbd-in-flight:pvm=3/31"), seen);

                epoch.increment();
                assertEquals(8, reader.reader().getCounterValue(epoch.id()), "the mapping is shared, not a copy");
            }
        }
        assertTrue(Files.exists(path), "the file outlives the daemon for post-mortem reading");
        try (CountersFile reader = CountersFile.open(path))
        {
            assertEquals(8, reader.reader().getCounterValue(0));
        }
    }

    @Test
    void holdsMaxCountersAndRefusesMore()
    {
        try (CountersFile writer = CountersFile.create(dir.resolve("full"), DaemonRole.SERVE, false, START))
        {
            for (int i = 0; i < CountersFile.MAX_COUNTERS; i++)
            {
                writer.manager().allocate("c" + i, CounterType.ERRORS.typeId());
            }
            assertThrows(IllegalStateException.class, () -> writer.manager().allocate("one too many"));
        }
    }

    @Test
    void missingFileIsRefusedAsMissing()
    {
        assertReason(MappedFileException.Reason.MISSING, dir.resolve("nothing"));
    }

    @Test
    void anotherProgramsFileIsRefusedAsNotOurs() throws IOException
    {
        final Path path = dir.resolve("other");
        Files.write(path, new byte[4096]);
        assertReason(MappedFileException.Reason.NOT_OURS, path);
        try (ErrorLogFile log = ErrorLogFile.create(dir.resolve("errors"), DaemonRole.PRIMARY, 4096, START))
        {
            assertReason(MappedFileException.Reason.NOT_OURS, dir.resolve("errors"));
        }
    }

    @Test
    void anotherVersionIsRefusedAsWrongVersion() throws IOException
    {
        final Path path = dir.resolve("v2");
        CountersFile.create(path, DaemonRole.SECONDARY, false, START).close();
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.seek(MappedFileHeader.VERSION_OFFSET);
            file.write(new byte[]{2, 0, 0, 0});
        }
        final MappedFileException refused = assertReason(MappedFileException.Reason.WRONG_VERSION, path);
        assertTrue(refused.getMessage().contains("version 2, this understudy reads version 1"), refused.getMessage());
    }

    @Test
    void aCutFileIsRefusedAsTruncated() throws IOException
    {
        final Path path = dir.resolve("cut");
        CountersFile.create(path, DaemonRole.PRIMARY, false, START).close();
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.setLength(MappedFileHeader.LENGTH + 1000);
        }
        final MappedFileException refused = assertReason(MappedFileException.Reason.TRUNCATED, path);
        assertTrue(refused.getMessage().contains("its header says " + (MappedFileHeader.LENGTH +
            CountersFile.METADATA_LENGTH + CountersFile.VALUES_LENGTH)), refused.getMessage());
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.setLength(10);
        }
        assertReason(MappedFileException.Reason.TRUNCATED, path);
    }

    @Test
    void aFileOfALiveProcessIsNotTakenButOneOfADeadProcessIs() throws IOException
    {
        final Path path = dir.resolve("owned");
        CountersFile.create(path, DaemonRole.PRIMARY, false, START).close();
        final long parent = ProcessHandle.current().parent().orElseThrow().pid();
        writePid(path, parent);
        final MappedFileException refused = assertThrows(MappedFileException.class,
            () -> CountersFile.create(path, DaemonRole.PRIMARY, false, START));
        assertEquals(MappedFileException.Reason.IN_USE, refused.reason());
        assertTrue(refused.getMessage().contains("in use by the running process " + parent), refused.getMessage());

        writePid(path, Integer.MAX_VALUE);
        try (CountersFile taken = CountersFile.create(path, DaemonRole.SERVE, false, START + 1))
        {
            assertEquals(DaemonRole.SERVE, taken.role());
            assertEquals(ProcessHandle.current().pid(), taken.pid());
            assertFalse(taken.shared());
        }
    }

    @Test
    void neverReplacesAFileThatIsNotItsOwnKind() throws IOException
    {
        final Path image = dir.resolve("disk.img");
        final byte[] bytes = new byte[8192];
        Arrays.fill(bytes, (byte)0x11);
        Files.write(image, bytes);
        final MappedFileException refused = assertThrows(MappedFileException.class,
            () -> CountersFile.create(image, DaemonRole.PRIMARY, false, START));
        assertEquals(MappedFileException.Reason.NOT_OURS, refused.reason());
        assertTrue(refused.getMessage().contains("refusing to replace it"), refused.getMessage());
        assertArrayEquals(bytes, Files.readAllBytes(image), "the foreign file is untouched");

        final Path errors = dir.resolve("d.errors");
        ErrorLogFile.create(errors, DaemonRole.PRIMARY, 4096, START).close();
        assertEquals(MappedFileException.Reason.NOT_OURS, assertThrows(MappedFileException.class,
            () -> CountersFile.create(errors, DaemonRole.PRIMARY, false, START)).reason(),
            "an error log is no counters file");

        final Path empty = dir.resolve("empty");
        Files.createFile(empty);
        CountersFile.create(empty, DaemonRole.PRIMARY, false, START).close();
        CountersFile.open(empty).close();
    }

    private static void writePid(final Path path, final long pid) throws IOException
    {
        try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw"))
        {
            file.seek(MappedFileHeader.PID_OFFSET);
            file.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(pid).array());
        }
    }

    private static MappedFileException assertReason(final MappedFileException.Reason reason, final Path path)
    {
        final MappedFileException refused = assertThrows(MappedFileException.class, () -> CountersFile.open(path));
        assertEquals(reason, refused.reason(), refused.getMessage());
        assertTrue(refused.getMessage().startsWith(path.toString()), refused.getMessage());
        return refused;
    }
}
