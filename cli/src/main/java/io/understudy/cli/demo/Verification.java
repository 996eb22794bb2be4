package io.understudy.cli.demo;

/**
 * The outcome of comparing a disk against the {@link DiskModel}.
 *
 * @param bytesVerified   bytes compared and found equal (up to the first difference).
 * @param mismatchOffset  offset of the first differing byte, or -1 if the disk holds exactly what it must.
 * @param expected        the byte the model wants there (0 if there is no difference).
 * @param actual          the byte the disk holds there, or -1 if the disk ends before it.
 */
record Verification(long bytesVerified, long mismatchOffset, int expected, int actual)
{
    boolean ok()
    {
        return mismatchOffset < 0;
    }

    /** @return one line for the operator: what matched, or where and how it differs first. */
    String describe()
    {
        if (ok())
        {
            return bytesVerified + " bytes equal to the last completed checkpoint";
        }
        return "first difference at offset " + mismatchOffset + " (block " + mismatchOffset / DiskModel.BLOCK_SIZE +
            "): expected 0x" + String.format("%02x", expected) + ", found " +
            (actual < 0 ? "end of disk" : "0x" + String.format("%02x", actual));
    }
}
