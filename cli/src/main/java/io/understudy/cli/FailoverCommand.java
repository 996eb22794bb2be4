package io.understudy.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code understudy failover}: stop(failover=true), the operator's take-over. */
@Command(
    name = "failover",
    mixinStandardHelpOptions = true,
    description = {
        "Take over from a lost peer. On the secondary: refuse forwarded writes, commit the active and hidden",
        "overlays into the disk and keep serving the SVM. On the primary: drop the secondary and serve the guest",
        "alone, keeping the dirty bitmap for a resync. Waits for the commit to finish, showing its progress on",
        "stderr."})
final class FailoverCommand extends ControlCommand
{
    @Option(names = "--timeout-ms", paramLabel = "MS", defaultValue = "60000",
        description = "Deadline for I/O in flight to drain and for the commit to finish (default: ${DEFAULT-VALUE}).")
    long timeoutMillis;

    @Override
    String command()
    {
        return "failover";
    }

    @Override
    boolean showsProgress()
    {
        return true;
    }

    @Override
    long timeoutMillis()
    {
        return timeoutMillis;
    }
}
