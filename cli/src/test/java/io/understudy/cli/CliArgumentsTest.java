package io.understudy.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad arguments and files give a one-line reason and a non-zero exit code, before anything is served. */
class CliArgumentsTest
{
    @TempDir
    Path dir;

    private final InProcessCli cli = new InProcessCli();
    private final StringWriter out = cli.out;
    private final StringWriter err = cli.err;


    @Test
    void helpOnEveryCommandExitsZero()
    {
        assertEquals(0, cli.run("--help"));
        assertTrue(out.toString().contains("serve"), out.toString());
        assertEquals(0, cli.run("serve", "--help"));
        assertTrue(out.toString().contains("--disk"), out.toString());
        assertTrue(out.toString().contains("--read-only"), out.toString());
    }

    @Test
    void versionIsPrinted()
    {
        assertEquals(0, cli.run("--version"));
        assertTrue(out.toString().startsWith("understudy "), out.toString());
    }

    @Test
    void bashCompletionIsGeneratedForEverySubcommand()
    {
        assertEquals(0, cli.run("generate-completion"));
        for (final String word : new String[] {"understudy", "primary", "secondary", "media-driver", "demo", "stat",
            "--on-peer-loss", "--aeron-dir"})
        {
            assertTrue(out.toString().contains(word), word + " missing from the completion script");
        }
    }

    @Test
    void missingDiskIsAUsageError()
    {
        assertEquals(2, cli.run("serve", "--socket", dir.resolve("s").toString()));
        assertTrue(err.toString().contains("--disk"), err.toString());
    }

    @Test
    void metricsOnANonLoopbackAddressAreRefusedBeforeAnyFileIsCreated() throws Exception
    {
        final Path image = dir.resolve("m.img");
        Files.write(image, new byte[4096]);
        final Path socket = dir.resolve("m.sock");
        assertEquals(Understudy.EXIT_FAILURE, cli.run("serve", "--disk", image.toString(), "--socket", socket.toString(),
            "--metrics-listen", "0.0.0.0:9100"));
        assertTrue(err.toString().contains("--metrics-listen must be a loopback address"), err.toString());
        assertFalse(Files.exists(dir.resolve("m.sock.counters")));
        assertFalse(Files.exists(dir.resolve("m.sock.errors")));
    }

    @Test
    void aCountersPathNamingAnotherFileIsRefusedAndTheFileKept() throws Exception
    {
        final Path image = dir.resolve("c.img");
        Files.write(image, new byte[4096]);
        assertEquals(Understudy.EXIT_FAILURE, cli.run("serve", "--disk", image.toString(), "--socket",
            dir.resolve("c.sock").toString(), "--counters", image.toString()));
        assertTrue(err.toString().contains("--counters " + image + ": exists and is not an understudy counters " +
            "file: refusing to replace it"), err.toString());
        assertEquals(4096, Files.size(image));
    }

    @Test
    void socketAndListenAreExclusive()
    {
        assertEquals(2, cli.run("serve", "--disk", "x.img", "--socket", "s", "--listen", "127.0.0.1:10809"));
        assertTrue(err.toString().contains("mutually exclusive"), err.toString());
    }

    @Test
    void anEndpointIsRequired()
    {
        assertEquals(2, cli.run("serve", "--disk", "x.img"));
        assertTrue(err.toString().contains("--socket") && err.toString().contains("--listen"), err.toString());
    }

    @Test
    void badIoModeIsAUsageError()
    {
        assertEquals(2, cli.run("serve", "--disk", "x.img", "--socket", "s", "--io", "fast"));
        assertTrue(err.toString().contains("--io must be auto, uring or threads"), err.toString());
    }

    @Test
    void badSizeIsAUsageError()
    {
        assertEquals(2, cli.run("serve", "--disk", "x.img", "--socket", "s", "--create", "ten gigs"));
        assertTrue(err.toString().contains("is not a size"), err.toString());
        assertEquals(2, cli.run("serve", "--disk", "x.img", "--socket", "s", "--create", "0"));
    }

    @Test
    void badListenAddressIsAUsageError()
    {
        assertEquals(2, cli.run("serve", "--disk", "x.img", "--listen", "localhost"));
        assertTrue(err.toString().contains("HOST:PORT"), err.toString());
        assertEquals(2, cli.run("serve", "--disk", "x.img", "--listen", "127.0.0.1:70000"));
    }

    @Test
    void missingFileWithoutCreateFailsWithAHint()
    {
        final Path missing = dir.resolve("missing.img");
        assertEquals(1, cli.run("serve", "--disk", missing.toString(), "--socket", dir.resolve("s").toString()));
        assertTrue(err.toString().contains("no such file") && err.toString().contains("--create"), err.toString());
        assertFalse(Files.exists(missing));
    }

    @Test
    void directoryIsRefused()
    {
        assertEquals(1, cli.run("serve", "--disk", dir.toString(), "--socket", dir.resolve("s").toString()));
        assertTrue(err.toString().contains(dir.toString()), err.toString());
    }

    @Test
    void sizesParseWithBinarySuffixes()
    {
        assertEquals(4096L, ByteSize.parse("4096"));
        assertEquals(512L << 10, ByteSize.parse("512K"));
        assertEquals(64L << 20, ByteSize.parse("64MiB"));
        assertEquals(10L << 30, ByteSize.parse("10G"));
        assertEquals(1L << 40, ByteSize.parse("1t"));
        assertThrows(CommandLine.TypeConversionException.class, () -> ByteSize.parse("12Q"));
        assertThrows(CommandLine.TypeConversionException.class, () -> ByteSize.parse("99999999999T"));
    }

    @Test
    void listenAddressDefaultsToLoopback()
    {
        assertEquals(new ListenAddress("127.0.0.1", 10809), ListenAddress.parse(":10809"));
        assertEquals(new ListenAddress("::1", 10809), ListenAddress.parse("[::1]:10809"));
        assertEquals(new ListenAddress("0.0.0.0", 0), ListenAddress.parse("0.0.0.0:0"));
    }
}
