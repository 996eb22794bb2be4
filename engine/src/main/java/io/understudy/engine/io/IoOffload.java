package io.understudy.engine.io;

/**
 * Which requests the thread backend hands to its workers; the others run inline on the submitting thread.
 * Without workers every request runs inline, whatever this says.
 */
public enum IoOffload
{
    /** Every request goes to a worker: the submitting thread never makes a syscall. */
    ALL,
    /**
     * Only the requests that wait for the disk go to a worker: flushes and FUA writes or zeroes. Reads, plain
     * writes, discards and zeroes of buffered files are page-cache copies and run inline, so the common case pays
     * no hand-off, while an fdatasync that takes seconds on a slow disk never holds the submitting thread. For a
     * thread that must stay responsive (a duty thread that also sends heartbeats) but whose I/O is mostly
     * buffered.
     */
    FLUSHES
}
