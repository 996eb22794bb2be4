package io.understudy.aeron;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class RecentWorkIdleStrategyTest
{
    private static final long MIN = 1_000;
    private static final long HOT = 50_000;
    private static final long IDLE = 1_000_000;
    private static final long WINDOW = TimeUnit.MILLISECONDS.toNanos(10);

    @Test
    void parksDoubleUpToTheHotCapWhileWorkIsRecentThenUpToTheIdleCap()
    {
        final RecentWorkIdleStrategy strategy = new RecentWorkIdleStrategy(0, 0, MIN, HOT, IDLE, WINDOW, true);
        strategy.idle(1);
        final long now = System.nanoTime();
        final long[] hot = new long[8];
        for (int i = 0; i < hot.length; i++)
        {
            hot[i] = strategy.nextPark(now);
        }
        assertEquals("[1000, 2000, 4000, 8000, 16000, 32000, 50000, 50000]", Arrays.toString(hot));

        final long later = now + WINDOW + 1;
        long park = 0;
        for (int i = 0; i < 20; i++)
        {
            park = strategy.nextPark(later);
        }
        assertEquals(IDLE, park, "an idle link parks up to the idle cap");
    }

    @Test
    void workStartsTheParksOverAndMakesTheThreadHotAgain()
    {
        final RecentWorkIdleStrategy strategy = new RecentWorkIdleStrategy(0, 0, MIN, HOT, IDLE, WINDOW, true);
        for (int i = 0; i < 20; i++)
        {
            strategy.nextPark(System.nanoTime());
        }
        assertEquals(IDLE, strategy.nextPark(System.nanoTime()), "no work since construction: the thread starts idle");

        strategy.idle(3);
        assertEquals(MIN, strategy.nextPark(System.nanoTime()));
    }

    @Test
    void withoutAnyWorkCountingOnlyHandledMessagesMakeTheThreadHot()
    {
        final RecentWorkIdleStrategy strategy = new RecentWorkIdleStrategy(0, 0, MIN, HOT, IDLE, WINDOW, false);
        for (int i = 0; i < 20; i++)
        {
            strategy.nextPark(System.nanoTime());
        }
        strategy.idle(5);
        assertEquals(IDLE, strategy.nextPark(System.nanoTime()), "driver housekeeping leaves the backoff as it was");

        strategy.messagesHandled();
        // One clock reading for the parks that follow: a preempted test thread must not leave the hot window.
        final long now = System.nanoTime();
        strategy.idle(5);
        assertEquals(MIN, strategy.nextPark(now));
        for (int i = 0; i < 20; i++)
        {
            strategy.nextPark(now);
        }
        assertEquals(HOT, strategy.nextPark(now), "hot after messages");
    }

    @Test
    void capsOutOfOrderAreRefused()
    {
        assertThrows(IllegalArgumentException.class, () -> new RecentWorkIdleStrategy(0, 0, MIN, IDLE, HOT, WINDOW, true));
        assertThrows(IllegalArgumentException.class, () -> new RecentWorkIdleStrategy(0, 0, 0, HOT, IDLE, WINDOW, true));
    }
}
