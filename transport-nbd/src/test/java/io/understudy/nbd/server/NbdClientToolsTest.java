package io.understudy.nbd.server;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real NBD clients QEMU users and admins run, against the server in this JVM: qemu-img, qemu-io, nbdinfo,
 * nbdsh, nbdcopy and fio's nbd engine. Each test fails naming the Debian package if its tool is missing.
 */
@Timeout(120)
class NbdClientToolsTest
{
    private static final long SIZE = 64 << 20;

    @TempDir
    Path dir;
    private ServerFixture fixture;

    @AfterEach
    void tearDown()
    {
        if (fixture != null)
        {
            fixture.close();
        }
    }

    private ServerFixture start(final boolean readOnly) throws IOException
    {
        fixture = new ServerFixture(dir, SIZE, 2, readOnly);
        return fixture;
    }

    /** A source image: random data in the first 6 MiB and at 40 MiB, holes elsewhere. */
    private Path sourceImage() throws IOException
    {
        final Path source = dir.resolve("source.img");
        final byte[] data = new byte[6 << 20];
        new Random(42).nextBytes(data);
        try (RandomAccessFile file = new RandomAccessFile(source.toFile(), "rw"))
        {
            file.setLength(SIZE);
            file.write(data);
            file.seek(40 << 20);
            file.write(data, 0, 1 << 20);
        }
        return source;
    }

    @Test
    void qemuImgInfoConvertCompare() throws Exception
    {
        Tool.require("qemu-img", "qemu-utils");
        start(false);
        final String info = Tool.ok(dir, 30, "qemu-img", "info", "--output=json", fixture.uri());
        assertTrue(info.contains("\"virtual-size\": " + SIZE), info);
        final Path source = sourceImage();
        Tool.ok(dir, 60, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source.toString(), fixture.uri());
        Tool.ok(dir, 60, "qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), fixture.uri());
        assertArrayEquals(Files.readAllBytes(source), Files.readAllBytes(fixture.file));
        // compare can fail: change one byte behind the server's back.
        try (RandomAccessFile file = new RandomAccessFile(fixture.file.toFile(), "rw"))
        {
            file.seek(12345);
            file.write(~Files.readAllBytes(source)[12345]);
        }
        final Tool.Result differ = Tool.run(dir, 60, List.of("qemu-img", "compare", "-f", "raw", "-F", "raw",
            source.toString(), fixture.uri()));
        assertEquals(1, differ.exitCode(), differ.output());
    }

    @Test
    void qemuIoPatterns() throws Exception
    {
        Tool.require("qemu-io", "qemu-utils");
        start(false);
        final String output = Tool.ok(dir, 60, "qemu-io", "-f", "raw",
            "-c", "write -P 0x5a 0 1M",
            "-c", "aio_write -P 0x11 1M 64k",
            "-c", "aio_write -P 0x22 2M 128k",
            "-c", "aio_write -P 0x33 3M 4k",
            "-c", "aio_flush",
            "-c", "write -f -P 0x44 4M 512",
            "-c", "read -P 0x5a 0 1M",
            "-c", "read -P 0x11 1M 64k",
            "-c", "readv -P 0x22 2M 64k 64k",
            "-c", "aio_read -P 0x33 3M 4k",
            "-c", "aio_flush",
            "-c", "read -P 0x44 4M 512",
            "-c", "write -z 1M 64k",
            "-c", "read -P 0 1M 64k",
            "-c", "discard 2M 128k",
            "-c", "read -P 0 60M 1M",
            fixture.uri());
        assertFalse(output.contains("fail"), output);
        assertTrue(output.contains("read 1048576/1048576 bytes at offset 0"), output);
        assertTrue(output.contains("read 512/512 bytes at offset 4194304"), output);
        final Tool.Result wrong = Tool.run(dir, 30, List.of("qemu-io", "-f", "raw", "-c", "read -P 0x99 0 4k",
            fixture.uri()));
        assertTrue(wrong.output().contains("Pattern verification failed"), "pattern checks can fail: "
            + wrong.output());
    }

    @Test
    void nbdinfoMapListAndFlags() throws Exception
    {
        Tool.require("nbdinfo", "libnbd-bin");
        start(false);
        try (RandomAccessFile file = new RandomAccessFile(fixture.file.toFile(), "rw"))
        {
            file.seek(1 << 20);
            file.write(new byte[] {1});
        }
        final String map = Tool.ok(dir, 30, "nbdinfo", "--map", fixture.uri());
        final List<String> lines = map.lines().map(String::strip).map(line -> line.replaceAll("\\s+", " ")).toList();
        assertEquals(List.of(
            "0 1048576 3 hole,zero",
            "1048576 4096 0 data",
            "1052672 66056192 3 hole,zero"), lines, map);
        final String list = Tool.ok(dir, 30, "nbdinfo", "--list", "nbd+unix:///?socket=" + fixture.socket);
        assertTrue(list.contains("export=\"disk\""), list);
        assertTrue(list.contains("description: test disk"), list);
        for (final String can : new String[] {"flush", "fua", "trim", "zero", "multi-conn", "cache", "df"})
        {
            Tool.ok(dir, 30, "nbdinfo", "--can", can, fixture.uri());
        }
        // This nbdinfo predates --has: the plain listing names the meta contexts.
        final String details = Tool.ok(dir, 30, "nbdinfo", fixture.uri());
        assertTrue(details.contains("contexts:\n\t\tbase:allocation\n"), details);
        Tool.ok(dir, 30, "nbdinfo", "--can", "structured-reply", fixture.uri());
        assertEquals(2, Tool.run(dir, 30, List.of("nbdinfo", "--is", "read-only", fixture.uri())).exitCode());
        assertEquals(SIZE + "\n", Tool.ok(dir, 30, "nbdinfo", "--size", fixture.uri()));
    }

    @Test
    void nbdinfoReadOnlyExport() throws Exception
    {
        Tool.require("nbdinfo", "libnbd-bin");
        start(true);
        Tool.ok(dir, 30, "nbdinfo", "--is", "read-only", fixture.uri());
        for (final String cannot : new String[] {"trim", "zero", "fast-zero"})
        {
            assertEquals(2, Tool.run(dir, 30, List.of("nbdinfo", "--can", cannot, fixture.uri())).exitCode(),
                cannot);
        }
    }

    private static final String NBDSH_PROTOCOL = """
        import errno
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
        h.connect_uri("%s")
        h.set_strict_mode(0)
        size = h.get_size()
        assert size == %d, size
        assert h.get_structured_replies_negotiated()
        def expect(errnum, f, *args):
            try:
                f(*args)
            except nbd.Error as e:
                assert e.errnum == errnum, (f.__name__, args, e)
                return
            raise AssertionError("no error from %%s%%s" %% (f.__name__, args))
        for off, n in [(size, 512), (size - 512, 1024), (2**63, 512), (2**64 - 512, 1024)]:
            expect(errno.EINVAL, h.pread, n, off)
            expect(errno.ENOSPC, h.pwrite, b"x" * n, off)
            expect(errno.EINVAL, h.trim, n, off)
            expect(errno.ENOSPC, h.zero, n, off)
        expect(errno.EINVAL, h.pread, 33 * 1024 * 1024, 0)
        big = bytes(range(256)) * (32 * 4096)
        h.pwrite(big, 0)
        assert h.pread(len(big), 0) == big
        cookies = [h.aio_pwrite(bytes([i]) * 65536, i * 65536, flags=(nbd.CMD_FLAG_FUA if i %% 7 == 0 else 0))
                   for i in range(64)]
        for c in cookies:
            while not h.aio_command_completed(c):
                h.poll(-1)
        bufs = [nbd.Buffer(65536) for i in range(64)]
        cookies = [h.aio_pread(bufs[i], i * 65536) for i in range(64)]
        cookies.append(h.aio_flush())
        for c in cookies:
            while not h.aio_command_completed(c):
                h.poll(-1)
        for i in range(64):
            assert bufs[i].to_bytearray() == bytes([i]) * 65536, i
        h.zero(65536, 0, nbd.CMD_FLAG_NO_HOLE)
        assert h.pread(65536, 0) == bytes(65536)
        h.trim(65536, 65536)
        h.cache(65536, 0)
        h.flush(nbd.CMD_FLAG_FUA)
        extents = []
        h.block_status(65536, 48 << 20, lambda meta, off, ents, err: extents.append((meta, off, list(ents))))
        assert extents == [("base:allocation", 48 << 20, [65536, 3])], extents
        assert h.pread(4096, 0, nbd.CMD_FLAG_DF) == bytes(4096)
        print("NBDSH-PROTOCOL-OK")
        """;

    @Test
    void nbdshProtocolErrorsAndManyInFlight() throws Exception
    {
        Tool.require("nbdsh", "python3-libnbd");
        start(false);
        final Path script = dir.resolve("protocol.py");
        Files.writeString(script, NBDSH_PROTOCOL.formatted(fixture.uri(), SIZE), StandardCharsets.UTF_8);
        final String output = Tool.ok(dir, 60, "nbdsh", "-c",
            "exec(open('" + script + "').read())");
        assertTrue(output.contains("NBDSH-PROTOCOL-OK"), output);
        final byte[] file = Files.readAllBytes(fixture.file);
        for (int i = 2; i < 64; i++)
        {
            assertEquals((byte)i, file[i * 65536 + 100], "aio write " + i);
        }
    }

    @Test
    void nbdshReadOnlyWritesFailWithEperm() throws Exception
    {
        Tool.require("nbdsh", "python3-libnbd");
        start(true);
        final String script = """
            import errno
            h.set_strict_mode(0)
            for f, args in [(h.pwrite, (b"x" * 4096, 0)), (h.zero, (4096, 0)), (h.trim, (4096, 0))]:
                try:
                    f(*args)
                    raise AssertionError("write accepted")
                except nbd.Error as e:
                    assert e.errnum == errno.EPERM, e
            assert h.pread(4096, 0) == bytes(4096)
            print("NBDSH-RO-OK")
            """;
        final Path path = dir.resolve("ro.py");
        Files.writeString(path, script, StandardCharsets.UTF_8);
        final String output = Tool.ok(dir, 60, "nbdsh", "-u", fixture.uri(), "-c",
            "exec(open('" + path + "').read())");
        assertTrue(output.contains("NBDSH-RO-OK"), output);
        assertArrayEquals(new byte[4096], java.util.Arrays.copyOf(Files.readAllBytes(fixture.file), 4096));
    }

    @Test
    void nbdshClientKilledMidTransfer() throws Exception
    {
        Tool.require("nbdsh", "python3-libnbd");
        start(false);
        final String script = """
            print("STARTED", flush=True)
            while True:
                cookies = [h.aio_pwrite(b"k" * (1 << 20), i << 20) for i in range(16)]
                cookies += [h.aio_pread(nbd.Buffer(1 << 20), i << 20) for i in range(16, 32)]
                for c in cookies:
                    while not h.aio_command_completed(c):
                        h.poll(-1)
            """;
        final Path path = dir.resolve("kill.py");
        Files.writeString(path, script, StandardCharsets.UTF_8);
        for (int round = 0; round < 3; round++)
        {
            final ProcessBuilder builder = new ProcessBuilder("nbdsh", "-u", fixture.uri(), "-c",
                "exec(open('" + path + "').read())").redirectErrorStream(true)
                .redirectOutput(dir.resolve("kill.log").toFile());
            builder.environment().put("PATH", "/usr/bin:/bin:" + System.getenv("PATH"));
            final Process process = builder.start();
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (fixture.server.counters().requests(io.understudy.nbd.protocol.NbdProtocol.CMD_READ) < 16L * (round + 1)
                && System.nanoTime() < deadline && process.isAlive())
            {
                Thread.sleep(5);
            }
            process.destroyForcibly().waitFor();
        }
        final String output = Tool.ok(dir, 60, "qemu-io", "-f", "raw", "-c", "write -P 0x77 0 64k",
            "-c", "read -P 0x77 0 64k", "-c", "read -P 0x6b 1M 1M", fixture.uri());
        assertFalse(output.contains("fail"), output);
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (fixture.server.connectionCount() > 0 && System.nanoTime() < deadline)
        {
            Thread.sleep(10);
        }
        assertEquals(0, fixture.server.connectionCount());
        assertEquals(0, fixture.server.counters().inFlight());
    }

    @Test
    void nbdcopyInAndOut() throws Exception
    {
        Tool.require("nbdcopy", "libnbd-bin");
        start(false);
        final Path source = sourceImage();
        Tool.ok(dir, 60, "nbdcopy", "--requests=32", source.toString(), fixture.uri());
        assertArrayEquals(Files.readAllBytes(source), Files.readAllBytes(fixture.file));
        final Path copy = dir.resolve("copy.img");
        Tool.ok(dir, 60, "nbdcopy", "--connections=4", fixture.uri(), copy.toString());
        assertArrayEquals(Files.readAllBytes(source), Files.readAllBytes(copy));
    }

    @Test
    void fioVerifyCrc32c() throws Exception
    {
        Tool.require("fio", "fio");
        start(false);
        final String uri = "nbd+unix:///?socket=" + fixture.socket;
        for (final String[] job : new String[][] {{"randwrite", "4k", "32"}, {"write", "1M", "8"}})
        {
            final String output = Tool.ok(dir, 90, "fio", "--name=crc", "--ioengine=nbd", "--uri=" + uri,
                "--rw=" + job[0], "--bs=" + job[1], "--iodepth=" + job[2], "--size=16M", "--verify=crc32c",
                "--do_verify=1", "--verify_fatal=1", "--randrepeat=0");
            assertTrue(output.contains("err= 0"), output);
            assertFalse(output.contains("verify: bad") || output.contains("crc32c: verify failed"), output);
            assertTrue(output.contains("crc: (groupid=0"), output);
        }
    }
}
