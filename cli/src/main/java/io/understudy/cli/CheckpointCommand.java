package io.understudy.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code understudy checkpoint}: asks a daemon for a checkpoint and prints how long each step took. */
@Command(
    name = "checkpoint",
    mixinStandardHelpOptions = true,
    description = {
        "Checkpoint the pair. On a primary linked to an Understudy secondary: drain and flush the forwarded",
        "writes, have the secondary empty its overlays, advance the epoch. On a primary whose peer is a plain",
        "NBD server: drain and flush only. On a secondary fed by a foreign (QEMU) primary: the secondary's",
        "checkpoint alone. Exits 0 on success, 1 with the reason otherwise."})
final class CheckpointCommand extends ControlCommand
{
    @Option(names = "--timeout-ms", paramLabel = "MS", defaultValue = "10000",
        description = "Deadline of the whole checkpoint (default: ${DEFAULT-VALUE}).")
    long timeoutMillis;

    @Override
    String command()
    {
        return "checkpoint";
    }

    @Override
    long timeoutMillis()
    {
        return timeoutMillis;
    }
}
