/**
 * Copy-before-write: {@link io.understudy.engine.cow.CowFilter} preserves the original contents of every
 * cluster a write touches in a target device (the hidden overlay), once per epoch, before the write reaches
 * the device below; together with the overlay's validated fall-through reads it keeps the SVM view free of
 * the primary's writes of the current epoch (INV-H, INV-ISO of the replication spec).
 */
package io.understudy.engine.cow;
