/**
 * Lock-free building blocks shared by the engine's layers: {@link io.understudy.engine.concurrent.IndexStack}
 * (the free list of preallocated request slots, which never reports a false "empty" nor loses an index) and
 * {@link io.understudy.engine.concurrent.Waiters} (requests parked until a completion or the duty cycle resumes
 * them, without lost wake-ups).
 */
package io.understudy.engine.concurrent;
