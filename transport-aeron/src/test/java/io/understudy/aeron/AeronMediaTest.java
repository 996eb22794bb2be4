package io.understudy.aeron;

import io.understudy.engine.link.PeerControl;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The embedded driver's directory lives under /dev/shm and goes with it; an external driver is reached by its dir. */
@Timeout(60)
class AeronMediaTest extends LinkTestBase
{
    @Test
    void embeddedDirectoryIsRemovedOnClose()
    {
        final Path directory;
        try (AeronMedia media = AeronMedia.embedded())
        {
            assertTrue(media.isEmbedded());
            directory = Path.of(media.directory());
            assertTrue(directory.getFileName().toString().startsWith("understudy-aeron-" +
                ProcessHandle.current().pid() + "-"), directory.toString());
            assertEquals(Path.of("/dev/shm"), directory.getParent());
            assertTrue(Files.isDirectory(directory));
        }
        assertFalse(Files.exists(directory), directory + " left behind");
    }

    /** The primary reaches the secondary's driver as an external one ({@code --aeron-dir}) and links over IPC. */
    @Test
    void externalDriverCarriesALink() throws Exception
    {
        final AeronLinkContext context = new AeronLinkContext();
        final AeronMedia driverOwner = own(AeronMedia.embedded());
        final AeronMedia external = own(AeronMedia.external(driverOwner.directory()));
        assertFalse(external.isEmbedded());
        final Pair pair = new Pair(false, context, driverOwner, external);
        final AeronPrimaryLink link = pair.connect(new LinkFixture.Events(), context);
        assertEquals(PeerControl.State.UP, link.state());
        runContract(pair, link, 3, 5);
    }
}
