package io.understudy.engine.cow;

/**
 * How a {@link CowFilter} moves originals from the device below into its target.
 * <p>
 * Measured on one 2-vCPU VM, 4 KiB H clusters, a checkpoint a second ({@code bench/replication-overhead.sh} over
 * NBD, the two ways interleaved). S and H on tmpfs, two runs of four and six rounds: {@link #KERNEL} gave 1.03x and
 * 1.01x the IOPS of {@link #MEMORY} for 4 KiB random writes at queue depth 32, 1.01x and 1.12x the throughput for
 * 1 MiB sequential writes; single rounds ranged from 0.79x to 1.38x, so no gain shows beyond this VM's spread. XFS
 * with reflink on a loop device, three rounds: 1.7x for the random writes, but 0.7x for the sequential ones and
 * 0.7x at queue depth 1: before a range is shared the kernel writes its dirty pages to disk, and forwarded writes keep
 * S's recent ranges dirty. QEMU's backup job, which COLO's block replication runs, also copies through memory unless
 * told otherwise (its copy offload is off by default since QEMU 6.0).
 */
public enum CowCopy
{
    /** Read the run into the request's buffer, then write it to the target: any pair of devices. */
    MEMORY,
    /**
     * One copy_file_range(2) per run where the target can fill itself from below
     * ({@link io.understudy.engine.device.CopyOffload}: a hidden overlay in a file over S in a file on the same file
     * system), through memory otherwise or once the kernel refused.
     */
    KERNEL
}
