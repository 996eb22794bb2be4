/**
 * Overlay block devices: {@link io.understudy.engine.overlay.OverlayDevice} (copy-on-write layer over a
 * backing device, chains of any depth such as active -> hidden -> disk, make-empty at checkpoints),
 * {@link io.understudy.engine.overlay.OverlayCommit} (copies a chain down into its bottom device at failover),
 * and the storage behind an overlay: {@link io.understudy.engine.overlay.FileOverlayStorage} (sparse file
 * through an I/O engine) and {@link io.understudy.engine.overlay.MemoryOverlayStorage} (off-heap chunks).
 */
package io.understudy.engine.overlay;
