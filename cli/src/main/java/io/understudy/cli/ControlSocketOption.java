package io.understudy.cli;

import picocli.CommandLine.Option;

import java.nio.file.Path;

/** {@code --control PATH}: the daemon's control socket, shared by the thin client commands. */
final class ControlSocketOption
{
    @Option(names = "--control", required = true, paramLabel = "PATH",
        description = "Control socket of the primary or secondary daemon.")
    Path control;
}
