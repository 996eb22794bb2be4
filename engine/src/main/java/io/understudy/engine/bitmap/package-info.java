/**
 * Off-heap, lock-free bitmaps with one bit per cluster of a disk: {@link io.understudy.engine.bitmap.AtomicBitmap}
 * (hierarchical summaries so that clear-all, scans and population count follow the dirty part, not the disk
 * size) and {@link io.understudy.engine.bitmap.BitmapFile} (the same bitmap in a memory-mapped file with a
 * versioned, checksummed header). Used for overlay allocation, COW ("copied this epoch") and in-flight
 * ownership bits.
 */
package io.understudy.engine.bitmap;
