package dev.kgen.conformance;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The processor of the {@code processor} twin, as tests/conformance/tally.py is kgen's: counts
 * each key's records in a store, forwards each record with its count and where it was read
 * (its timestamp moved on by the count), forwards the store's content at each stream-time
 * punctuation (every second), and at each wall-clock punctuation (every 5 s) deletes the keys
 * from "a" to "z" counted twice or more.
 */
final class Tally implements Processor<String, String, String, String> {

    private ProcessorContext<String, String> context;
    private KeyValueStore<String, Long> store;

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.context = context;
        this.store = context.getStateStore("tally");
        context.schedule(Duration.ofMillis(1000), PunctuationType.STREAM_TIME, this::streamTime);
        context.schedule(Duration.ofMillis(5000), PunctuationType.WALL_CLOCK_TIME, this::wallClock);
    }

    @Override
    public void process(Record<String, String> record) {
        String key = record.key();
        if (key == null) {
            context.forward(record.withValue("no key"));
            return;
        }
        RecordMetadata where = context.recordMetadata().orElseThrow();
        if (record.value() == null) {
            Long old = store.delete(key);
            context.forward(record.withValue("deleted " + old + " @" + where.offset()));
            return;
        }
        Long count = store.get(key);
        long n = count == null ? 1 : count + 1;
        store.put(key, n);
        context.forward(record
                .withValue(record.value() + "|" + n + "|" + where.topic() + "@" + where.offset())
                .withTimestamp(record.timestamp() + n));
    }

    private void streamTime(long timestamp) {
        StringBuilder text = new StringBuilder("st@" + timestamp);
        try (KeyValueIterator<String, Long> all = store.all()) {
            while (all.hasNext()) {
                KeyValue<String, Long> entry = all.next();
                text.append(' ').append(entry.key).append('=').append(entry.value);
            }
        }
        context.forward(new Record<>("stream-time", text.toString(), timestamp));
    }

    private void wallClock(long timestamp) {
        List<String> gone = new ArrayList<>();
        try (KeyValueIterator<String, Long> range = store.range("a", "z")) {
            while (range.hasNext()) {
                KeyValue<String, Long> entry = range.next();
                if (entry.value >= 2) {
                    gone.add(entry.key);
                }
            }
        }
        for (String key : gone) {
            store.delete(key);
        }
        String text = "wc@" + timestamp + " st=" + context.currentStreamTimeMs() + " " + String.join(",", gone);
        context.forward(new Record<>("wall-clock", text, timestamp));
    }
}
