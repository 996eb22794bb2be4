package io.understudy.cli;

import picocli.CommandLine;

/** Reports the version recorded in the jar manifest at build time. */
public final class VersionProvider implements CommandLine.IVersionProvider
{
    @Override
    public String[] getVersion()
    {
        final String version = Understudy.class.getPackage().getImplementationVersion();
        return new String[]{
            "understudy " + (version != null ? version : "(development build)"),
            "JVM: ${java.version} (${java.vendor} ${java.vm.name})"};
    }
}
