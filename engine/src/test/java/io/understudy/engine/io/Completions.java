package io.understudy.engine.io;

import io.understudy.engine.device.IoCompletion;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Records each cookie's result and how often it completed, so tests can insist on exactly once. */
final class Completions implements IoCompletion
{
    private static final long TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(20);

    private final int[] results;
    private final AtomicIntegerArray counts;
    private final AtomicInteger total = new AtomicInteger();

    Completions(final int cookies)
    {
        results = new int[cookies];
        counts = new AtomicIntegerArray(cookies);
    }

    @Override
    public void onComplete(final long cookie, final int result)
    {
        results[(int)cookie] = result;
        total.incrementAndGet();
        counts.incrementAndGet((int)cookie); // volatile, last: publishes the result and the total to the waiter
    }

    int total()
    {
        return total.get();
    }

    int count(final int cookie)
    {
        return counts.get(cookie);
    }

    /** Waits for the cookie's completion and returns its result. */
    int await(final int cookie)
    {
        final long deadline = System.nanoTime() + TIMEOUT_NANOS;
        while (counts.get(cookie) == 0)
        {
            if (System.nanoTime() > deadline)
            {
                fail("cookie " + cookie + " never completed");
            }
            LockSupport.parkNanos(20_000);
        }
        return results[cookie];
    }

    void awaitTotal(final int expected)
    {
        final long deadline = System.nanoTime() + TIMEOUT_NANOS;
        while (total.get() < expected)
        {
            if (System.nanoTime() > deadline)
            {
                fail("only " + total.get() + " of " + expected + " requests completed");
            }
            LockSupport.parkNanos(20_000);
        }
    }

    /** Asserts that cookies 0..n-1 completed exactly once each and no other completion happened. */
    void assertExactlyOnce(final int n)
    {
        for (int i = 0; i < n; i++)
        {
            assertEquals(1, counts.get(i), "completions of cookie " + i);
        }
        assertEquals(n, total.get(), "total completions");
    }
}
