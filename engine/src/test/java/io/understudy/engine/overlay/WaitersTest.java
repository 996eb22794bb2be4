package io.understudy.engine.overlay;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WaitersTest
{
    @Test
    void aDrainReportsOnlyTheRequestsThatWentOnSoThatADutyCycleCanIdle()
    {
        final Waiters<Runnable> waiters = new Waiters<>(4);
        final boolean[] blocked = {true};
        final int[] finished = {0};
        final Runnable[] request = new Runnable[1];
        request[0] = () ->
        {
            final long observed = waiters.observe();
            if (blocked[0])
            {
                waiters.park(request[0], observed);
                return;
            }
            finished[0]++;
        };
        waiters.park(request[0], waiters.observe());

        assertEquals(0, waiters.drain(), "resumed, but parked again: no progress");
        assertFalse(waiters.isEmpty());
        blocked[0] = false;
        assertEquals(1, waiters.drain());
        assertEquals(1, finished[0]);
        assertTrue(waiters.isEmpty());
        assertEquals(0, waiters.drain());
    }
}
