package io.understudy.nbd.interop;

import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Without QEMU the interop tests fail (never skip), and the message says which Debian package to install. */
class QemuRequirementTest
{
    @Test
    void missingToolFailsNamingThePackage()
    {
        final AssertionFailedError failure = assertThrows(AssertionFailedError.class,
            () -> Qemu.require("understudy-no-such-qemu", "qemu-system-x86"));
        assertEquals("understudy-no-such-qemu is not installed: apt-get install --no-install-recommends " +
            "qemu-system-x86", failure.getMessage());
    }
}
