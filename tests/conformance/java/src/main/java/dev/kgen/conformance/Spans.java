package dev.kgen.conformance;

import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.kstream.internals.SessionWindow;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.state.WindowStoreIterator;

/**
 * The processor of the {@code processor-windows} twin, as tests/conformance/spans.py is kgen's:
 * counts each key's records per 1 s window in a window store (a null value deletes the
 * record's window) and forwards the count with the key's windows of the last 2.5 s; merges the
 * key's sessions within 500 ms of the record in a session store and forwards the session it
 * made.
 */
final class Spans implements Processor<String, String, String, String> {

    private ProcessorContext<String, String> context;
    private WindowStore<String, Long> windows;
    private SessionStore<String, Long> sessions;

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.context = context;
        this.windows = context.getStateStore("spans-windows");
        this.sessions = context.getStateStore("spans-sessions");
    }

    @Override
    public void process(Record<String, String> record) {
        String key = record.key();
        if (key == null) {
            context.forward(record.withValue("no key"));
            return;
        }
        long ts = record.timestamp();
        long start = ts - ts % 1000;
        if (record.value() == null) {
            Long old = windows.fetch(key, start);
            windows.put(key, null, start);
            context.forward(record.withValue("deleted " + old + " @" + start));
            return;
        }
        Long count = windows.fetch(key, start);
        long n = count == null ? 1 : count + 1;
        windows.put(key, n, start);
        List<String> recent = new ArrayList<>();
        try (WindowStoreIterator<Long> it = windows.fetch(key, ts - 2500, ts)) {
            while (it.hasNext()) {
                KeyValue<Long, Long> entry = it.next();
                recent.add(entry.key + "=" + entry.value);
            }
        }
        List<Windowed<String>> merged = new ArrayList<>();
        long low = ts;
        long high = ts;
        long total = 1;
        try (KeyValueIterator<Windowed<String>, Long> it = sessions.findSessions(key, ts - 500, ts + 500)) {
            while (it.hasNext()) {
                KeyValue<Windowed<String>, Long> entry = it.next();
                low = Math.min(low, entry.key.window().start());
                high = Math.max(high, entry.key.window().end());
                total += entry.value;
                merged.add(entry.key);
            }
        }
        for (Windowed<String> session : merged) {
            sessions.remove(session);
        }
        sessions.put(new Windowed<>(key, new SessionWindow(low, high)), total);
        String text = record.value() + "|w=" + n + "|" + String.join(",", recent)
                + "|s=[" + low + "," + high + "]=" + total + " merged=" + merged.size();
        context.forward(record.withValue(text));
    }
}
