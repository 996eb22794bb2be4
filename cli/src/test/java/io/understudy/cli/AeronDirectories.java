package io.understudy.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Removes the media-driver directories that killed daemons leave in /dev/shm: a SIGKILL skips the shutdown hook
 * that would delete an embedded driver's directory ({@code understudy-aeron-PID-*}), and the tests kill daemons
 * on purpose.
 */
final class AeronDirectories
{
    private static final Path SHM = Path.of("/dev/shm");

    private AeronDirectories()
    {
    }

    /** Waits for each daemon to be gone, then removes its embedded drivers' directories and {@code shared}. */
    static void removeLeftBy(final List<DaemonProcess> daemons, final Path shared)
    {
        for (final DaemonProcess daemon : daemons)
        {
            try
            {
                daemon.waitFor(Duration.ofSeconds(10));
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
                return;
            }
            catch (final AssertionError ignored)
            {
                // Killed already: removing its directory is all that is left to do.
            }
            try (Stream<Path> left = Files.list(SHM))
            {
                left.filter(path -> path.getFileName().toString().startsWith("understudy-aeron-" + daemon.pid() + "-"))
                    .forEach(AeronDirectories::delete);
            }
            catch (final IOException ignored)
            {
                // No /dev/shm here: the drivers used the temporary directory, which the tests' @TempDir removes.
            }
        }
        if (shared != null)
        {
            delete(shared);
        }
    }

    private static void delete(final Path directory)
    {
        try (Stream<Path> tree = Files.walk(directory))
        {
            tree.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
        }
        catch (final IOException ignored)
        {
            // Gone already.
        }
    }
}
