package dev.kgen.conformance;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * Runs conformance twins as real Kafka Streams applications against a broker.
 *
 * <p>Usage: {@code java -cp kafka-streams-conformance.jar dev.kgen.conformance.BrokerRun
 * TOPOLOGY BOOTSTRAP APP_ID STATE_DIR [TOPOLOGY BOOTSTRAP APP_ID STATE_DIR ...]}: each group of
 * four is one KafkaStreams instance of the twin TOPOLOGY (see {@link Twins}), all in this JVM,
 * started together. Each runs with {@code processing.guarantee=exactly_once_v2}, the record
 * cache off ({@code statestore.cache.max.bytes=0}), {@code commit.interval.ms=100} and one
 * stream thread, and writes to its sink topics renamed {@code PREFIX + name} (system property
 * {@code kgen.sink.prefix}, default {@code ks-}), so that it can run beside the kgen app that
 * reads the same input topics.
 *
 * <p>An instance is done once it has processed records and then none for {@code kgen.idle.ms}
 * (default 3000), or when it failed, or after {@code kgen.max.ms} (default 60000) in all. Then
 * every instance is closed (an open transaction is committed) and one JSON line per instance is
 * printed to stdout: {@code topology, app_id, processed, state, idle} (true when it ended idle),
 * and {@code error} when it failed. Exit 0 when every instance ended idle and closed cleanly, 1
 * otherwise, 2 on bad arguments.
 */
public final class BrokerRun {

    private BrokerRun() {}

    /** One KafkaStreams instance and what is known about its progress. */
    private static final class Instance {
        final String topology;
        final String appId;
        final KafkaStreams streams;
        final AtomicReference<Throwable> error = new AtomicReference<>();
        long processed;
        long lastChange = System.nanoTime();
        boolean idle;
        boolean done;

        Instance(String topology, String appId, KafkaStreams streams) {
            this.topology = topology;
            this.appId = appId;
            this.streams = streams;
        }
    }

    public static void main(String[] args) throws InterruptedException {
        if (args.length == 0 || args.length % 4 != 0) {
            System.err.println("usage: BrokerRun TOPOLOGY BOOTSTRAP APP_ID STATE_DIR [...]");
            System.exit(2);
        }
        String prefix = System.getProperty("kgen.sink.prefix", "ks-");
        long idleNanos = Long.getLong("kgen.idle.ms", 3000L) * 1_000_000L;
        long maxNanos = Long.getLong("kgen.max.ms", 60000L) * 1_000_000L;
        Map<String, Twin> twins = Twins.all(prefix);
        List<Instance> instances = new ArrayList<>();
        for (int i = 0; i < args.length; i += 4) {
            Twin twin = twins.get(args[i]);
            if (twin == null) {
                System.err.println("no twin named " + args[i] + "; known: " + twins.keySet());
                System.exit(2);
            }
            Properties props = new Properties();
            props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[i + 2]);
            props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[i + 1]);
            props.put(StreamsConfig.STATE_DIR_CONFIG, args[i + 3]);
            props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
            props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
            props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
            props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
            Instance instance = new Instance(args[i], args[i + 2], new KafkaStreams(twin.topology().get(), props));
            instance.streams.setUncaughtExceptionHandler(e -> {
                instance.error.compareAndSet(null, e);
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            instances.add(instance);
        }
        long start = System.nanoTime();
        for (Instance instance : instances) {
            instance.streams.start();
        }
        while (true) {
            long now = System.nanoTime();
            boolean all = true;
            for (Instance instance : instances) {
                if (instance.done) {
                    continue;
                }
                long processed = processed(instance.streams);
                if (processed != instance.processed) {
                    instance.processed = processed;
                    instance.lastChange = now;
                }
                KafkaStreams.State state = instance.streams.state();
                if (instance.error.get() != null || state == KafkaStreams.State.ERROR
                        || state == KafkaStreams.State.PENDING_ERROR || state == KafkaStreams.State.NOT_RUNNING) {
                    instance.done = true;
                } else if (state == KafkaStreams.State.RUNNING && processed > 0 && now - instance.lastChange >= idleNanos) {
                    instance.idle = true;
                    instance.done = true;
                } else if (now - start >= maxNanos) {
                    instance.done = true;
                } else {
                    all = false;
                }
            }
            if (all) {
                break;
            }
            Thread.sleep(100);
        }
        boolean ok = true;
        for (Instance instance : instances) {
            String state = instance.streams.state().toString();
            boolean closed = instance.streams.close(Duration.ofSeconds(30));
            ObjectNode line = Format.MAPPER.createObjectNode();
            line.put("topology", instance.topology);
            line.put("app_id", instance.appId);
            line.put("processed", instance.processed);
            line.put("state", state);
            line.put("idle", instance.idle);
            line.put("closed", closed);
            if (instance.error.get() != null) {
                line.put("error", String.valueOf(instance.error.get()));
            }
            System.out.println(line);
            ok &= instance.idle && closed && instance.error.get() == null;
        }
        System.out.flush();
        System.exit(ok ? 0 : 1);
    }

    /** Records processed so far by the instance's stream threads (their process-total). */
    static long processed(KafkaStreams streams) {
        double total = 0;
        for (Map.Entry<MetricName, ? extends Metric> e : streams.metrics().entrySet()) {
            MetricName name = e.getKey();
            if (name.name().equals("process-total") && name.group().equals("stream-thread-metrics")) {
                Object value = e.getValue().metricValue();
                if (value instanceof Number number) {
                    total += number.doubleValue();
                }
            }
        }
        return (long) total;
    }
}
