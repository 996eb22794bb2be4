package io.understudy.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.understudy.cli.counters.CounterType;
import org.agrona.concurrent.status.CountersReader;

import java.io.PrintWriter;
import java.util.Iterator;
import java.util.Map;

/**
 * The one rendering of a daemon's counters, shared by {@code stat} (read from the file) and {@code status} (asked
 * of the daemon), so both show the same names and values: JSON {@code {"label": value}} with coded counters
 * (state, peer-link) as their labels, and text as one aligned {@code label value} line each.
 */
final class CountersJson
{
    private static final String LINE_FORMAT = "  %-32s %s%n";

    private CountersJson()
    {
    }

    /** Adds every allocated counter of {@code reader} to {@code counters}, in allocation order. */
    static ObjectNode put(final CountersReader reader, final ObjectNode counters)
    {
        reader.forEach((value, counterId, label) ->
        {
            final CounterType type = CounterType.of(reader.getCounterTypeId(counterId));
            if (type != null && type.isCode())
            {
                counters.put(label, type.render(value));
            }
            else
            {
                counters.put(label, value);
            }
        });
        return counters;
    }

    static void print(final PrintWriter out, final JsonNode counters)
    {
        final Iterator<Map.Entry<String, JsonNode>> fields = counters.properties().iterator();
        while (fields.hasNext())
        {
            final Map.Entry<String, JsonNode> field = fields.next();
            out.printf(LINE_FORMAT, field.getKey(), field.getValue().asText());
        }
    }
}
