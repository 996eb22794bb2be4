package io.understudy.engine.replication;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class CheckpointHistoryTest
{
    @Test
    void reportsZeroBeforeTheFirstCheckpoint()
    {
        final CheckpointHistory history = new CheckpointHistory();
        assertEquals(0, history.count());
        assertEquals(0, history.lastNanos());
        assertEquals(0, history.p50Nanos());
        assertEquals(0, history.p99Nanos());
    }

    @Test
    void nearestRankPercentilesOfAFewCheckpoints()
    {
        final CheckpointHistory history = new CheckpointHistory();
        history.record(30);
        history.record(10);
        history.record(20);
        assertEquals(3, history.count());
        assertEquals(20, history.lastNanos());
        assertEquals(20, history.p50Nanos());
        assertEquals(30, history.p99Nanos());
    }

    @Test
    void onlyTheLastHundredCount()
    {
        final CheckpointHistory history = new CheckpointHistory();
        for (int i = 0; i < 50; i++)
        {
            history.record(1_000_000);
        }
        for (int i = 1; i <= CheckpointHistory.CAPACITY; i++)
        {
            history.record(i);
        }
        assertEquals(150, history.count());
        assertEquals(100, history.lastNanos());
        assertEquals(50, history.p50Nanos());
        assertEquals(99, history.p99Nanos());
    }
}
