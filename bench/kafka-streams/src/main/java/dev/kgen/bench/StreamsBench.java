package dev.kgen.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * The kgen benchmark's workloads written with the Kafka Streams DSL, as a Kafka Streams user
 * would: {@code filter}, {@code transform}, {@code count}, {@code windowed-count} and
 * {@code enrich} (a stream-table join with the table topic given by {@code --table}) over the
 * benchmark's JSON records.
 *
 * <p>Runs until SIGTERM (closes cleanly, exits 0) or, with {@code --stop-when-idle S}, until it
 * has been RUNNING for S seconds without processing a record (start-up and rebalances are not idle
 * time). Prints {@code processed N records} (input records) to stdout at the end. Exits 1 when
 * the instance fails (ERROR state, uncaught exception) and 2 on bad arguments.
 */
public final class StreamsBench {

    static final List<String> WORKLOADS =
            List.of("filter", "transform", "count", "windowed-count", "enrich");
    /** windowed-count: 1-minute tumbling windows, no grace. */
    static final Duration WINDOW = Duration.ofMinutes(1);
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(60);

    private StreamsBench() {}

    static final String USAGE =
            "usage: java -jar kafka-streams-bench.jar"
                    + " --workload filter|transform|count|windowed-count|enrich\n"
                    + "    --bootstrap HOST:PORT --input TOPIC --output TOPIC --application-id ID\n"
                    + "    --state-dir DIR [--commit-interval-ms N] [--threads N]"
                    + " [--stop-when-idle SECONDS]\n"
                    + "    [--table TOPIC] (enrich: the topic read as the table, required there)\n"
                    + "    [--config KEY=VALUE]... (any Kafka Streams or client setting)";

    /** The command line. */
    record Options(
            String workload,
            String bootstrap,
            String input,
            String output,
            String applicationId,
            String stateDir,
            Long commitIntervalMs,
            int threads,
            Double stopWhenIdleSeconds,
            String table,
            Map<String, String> config) {

        static Options parse(String[] args) {
            Map<String, String> values = new HashMap<>();
            Map<String, String> config = new LinkedHashMap<>();
            List<String> known =
                    List.of("--workload", "--bootstrap", "--input", "--output", "--application-id",
                            "--state-dir", "--commit-interval-ms", "--threads", "--stop-when-idle",
                            "--table");
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                if (arg.equals("-h") || arg.equals("--help")) {
                    System.out.println(USAGE);
                    System.exit(0);
                }
                String name = arg;
                String value;
                int eq = arg.indexOf('=');
                if (arg.startsWith("--") && eq > 0) {
                    name = arg.substring(0, eq);
                    value = arg.substring(eq + 1);
                } else {
                    if (i + 1 >= args.length) {
                        throw new IllegalArgumentException(arg + " needs a value");
                    }
                    value = args[++i];
                }
                if (name.equals("--config")) {
                    int sep = value.indexOf('=');
                    if (sep <= 0) {
                        throw new IllegalArgumentException("--config needs KEY=VALUE, not " + value);
                    }
                    config.put(value.substring(0, sep), value.substring(sep + 1));
                    continue;
                }
                if (!known.contains(name)) {
                    throw new IllegalArgumentException("unknown option " + name);
                }
                values.put(name, value);
            }
            for (String required : known.subList(0, 6)) {
                if (!values.containsKey(required)) {
                    throw new IllegalArgumentException(required + " is required");
                }
            }
            String workload = values.get("--workload");
            if (!WORKLOADS.contains(workload)) {
                throw new IllegalArgumentException(
                        "--workload must be one of " + WORKLOADS + ", not " + workload);
            }
            Long commit = null;
            if (values.containsKey("--commit-interval-ms")) {
                commit = Long.parseLong(values.get("--commit-interval-ms"));
                if (commit < 0) {
                    throw new IllegalArgumentException("--commit-interval-ms must be >= 0");
                }
            }
            int threads = Integer.parseInt(values.getOrDefault("--threads", "1"));
            if (threads < 1) {
                throw new IllegalArgumentException("--threads must be >= 1");
            }
            Double idle = null;
            if (values.containsKey("--stop-when-idle")) {
                idle = Double.parseDouble(values.get("--stop-when-idle"));
                if (!(idle > 0)) {
                    throw new IllegalArgumentException("--stop-when-idle must be > 0");
                }
            }
            String table = values.get("--table");
            if ((table == null) == workload.equals("enrich")) {
                throw new IllegalArgumentException(
                        "--table is for --workload enrich, and required there");
            }
            return new Options(workload, values.get("--bootstrap"), values.get("--input"),
                    values.get("--output"), values.get("--application-id"),
                    values.get("--state-dir"), commit, threads, idle, table, config);
        }
    }

    /** How many input records were processed, and when anything last happened. */
    static final class Activity {
        final LongAdder processed = new LongAdder();
        volatile long lastNanos = System.nanoTime();

        void input() {
            processed.increment();
            lastNanos = System.nanoTime();
        }

        void touch() {
            lastNanos = System.nanoTime();
        }
    }

    static JsonNode parse(byte[] json) {
        try {
            return MAPPER.readTree(json);
        } catch (IOException e) {
            throw new UncheckedIOException("invalid JSON value", e);
        }
    }

    static JsonNode parse(String json) {
        try {
            return MAPPER.readTree(json);
        } catch (IOException e) {
            throw new UncheckedIOException("invalid JSON value", e);
        }
    }

    /** transform: the output value for one input value, keyed by its country. */
    static KeyValue<String, String> transform(byte[] value) {
        JsonNode in = parse(value);
        String country = in.path("country").asText();
        long amountCents = Math.round(in.path("amount").asDouble() * 100);
        ObjectNode out = MAPPER.createObjectNode();
        out.put("id", in.path("id").asLong());
        out.put("user", in.path("user").asText());
        out.put("country", country);
        out.put("amount_cents", amountCents);
        out.put("fee_cents", Math.floorDiv(amountCents * 3, 100));
        try {
            return KeyValue.pair(country, MAPPER.writeValueAsString(out));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * enrich: the input value with the user's tier and country appended (the fields stay in
     * their order, as kgen's {@code {**value, 'tier': ..., 'user_country': ...}} writes them).
     */
    static byte[] enrich(byte[] value, byte[] row) {
        ObjectNode out = (ObjectNode) parse(value);
        JsonNode user = parse(row);
        out.set("tier", user.get("tier"));
        out.set("user_country", user.get("country"));
        try {
            return MAPPER.writeValueAsBytes(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * windowed-count: the record's event time is its JSON value's {@code ts} (epoch ms). The
     * value is read as bytes, so this is the one place it is parsed.
     */
    static final class EventTime implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            return parse((byte[]) record.value()).path("ts").asLong();
        }
    }

    static Topology topology(Options o, Activity activity) {
        StreamsBuilder builder = new StreamsBuilder();
        switch (o.workload()) {
            case "filter" ->
                builder.stream(o.input(), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                        .peek((k, v) -> activity.input())
                        .filter((k, v) -> "keep".equals(parse(v).path("kind").textValue()))
                        .to(o.output(), Produced.with(Serdes.String(), Serdes.ByteArray()));
            case "transform" ->
                builder.stream(o.input(), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                        .peek((k, v) -> activity.input())
                        .map((k, v) -> transform(v))
                        .to(o.output(), Produced.with(Serdes.String(), Serdes.String()));
            case "count" ->
                builder.stream(o.input(), Consumed.with(Serdes.String(), Serdes.String()))
                        .peek((k, v) -> activity.input())
                        .groupBy((k, v) -> parse(v).path("user").textValue(),
                                Grouped.with(Serdes.String(), Serdes.String()))
                        .count(Materialized.as("counts"))
                        .toStream()
                        // The counts come out of the store's cache on commit: activity too.
                        .peek((k, v) -> activity.touch())
                        .to(o.output(), Produced.with(Serdes.String(), Serdes.Long()));
            case "windowed-count" ->
                // The input key is already the value's user: no repartition (see
                // bench/specs/windowed-count.toml for why it must not be one here).
                builder.stream(o.input(), Consumed.with(Serdes.String(), Serdes.ByteArray())
                                .withTimestampExtractor(new EventTime()))
                        .peek((k, v) -> activity.input())
                        .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
                        .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, Duration.ZERO))
                        .count(Materialized.as("counts"))
                        .toStream()
                        .peek((k, v) -> activity.touch())
                        .to(o.output(), Produced.with(
                                WindowedSerdes.timeWindowedSerdeFrom(
                                        String.class, WINDOW.toMillis()),
                                Serdes.Long()));
            case "enrich" -> {
                // The table: the latest row per user key, in the store "users" (its changelog
                // <application-id>-users-changelog). Its rows carry timestamps earlier than every
                // input record, so the task (both topics' partition p, co-partitioned) takes the
                // whole table before the first input record (timestamp order, KIP-695 waits for
                // a partition with records still to fetch).
                KTable<String, byte[]> users = builder.table(o.table(),
                        Consumed.with(Serdes.String(), Serdes.ByteArray()),
                        Materialized.as("users"));
                builder.stream(o.input(), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                        .peek((k, v) -> activity.input())
                        .join(users, StreamsBench::enrich)
                        .to(o.output(), Produced.with(Serdes.String(), Serdes.ByteArray()));
            }
            default -> throw new IllegalArgumentException(o.workload());
        }
        return builder.build();
    }

    static Properties properties(Options o) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.applicationId());
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap());
        p.put(StreamsConfig.STATE_DIR_CONFIG, o.stateDir());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, o.threads());
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        if (o.commitIntervalMs() != null) {
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, o.commitIntervalMs());
        }
        p.putAll(o.config());
        return p;
    }

    public static void main(String[] args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        System.exit(run(options));
    }

    static int run(Options o) {
        Object wake = new Object();
        CountDownLatch stopRequested = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger exitCode = new AtomicInteger(1);
        // SIGTERM (or SIGINT): ask the main thread to close the instance, wait until it has,
        // then end the JVM with its exit code (0 after a clean close, not 143). Registered
        // first, so that a signal during start-up is handled the same way.
        Thread hook = new Thread(() -> {
            stopRequested.countDown();
            synchronized (wake) {
                wake.notifyAll();
            }
            try {
                done.await(CLOSE_TIMEOUT.toSeconds() + 30, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            System.out.flush();
            System.err.flush();
            Runtime.getRuntime().halt(done.getCount() == 0 ? exitCode.get() : 1);
        }, "kafka-streams-bench-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            int code = runStreams(o, wake, stopRequested);
            exitCode.set(code);
            return code;
        } catch (RuntimeException e) {
            System.err.println("error: " + e);
            e.printStackTrace();
            exitCode.set(1);
            return 1;
        } finally {
            System.out.flush();
            done.countDown();
        }
    }

    static int runStreams(Options o, Object wake, CountDownLatch stopRequested) {
        Activity activity = new Activity();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        KafkaStreams streams = new KafkaStreams(topology(o, activity), properties(o));
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((newState, oldState) -> {
            synchronized (wake) {
                wake.notifyAll();
            }
        });

        String reason = "signal";
        try {
            if (stopRequested.getCount() > 0) {
                streams.start();
            }
            long idleNanos = o.stopWhenIdleSeconds() == null
                    ? Long.MAX_VALUE : (long) (o.stopWhenIdleSeconds() * 1e9);
            while (stopRequested.getCount() > 0) {
                synchronized (wake) {
                    try {
                        wake.wait(100);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        reason = "interrupted";
                        break;
                    }
                }
                KafkaStreams.State state = streams.state();
                if (state == KafkaStreams.State.PENDING_ERROR
                        || state == KafkaStreams.State.ERROR
                        || state == KafkaStreams.State.PENDING_SHUTDOWN
                        || state == KafkaStreams.State.NOT_RUNNING) {
                    reason = "state " + state;
                    break;
                }
                if (state != KafkaStreams.State.RUNNING) {
                    // Starting or rebalancing (the broker may delay the first join by seconds):
                    // not idle time, the clock starts again when the instance is RUNNING.
                    activity.touch();
                } else if (System.nanoTime() - activity.lastNanos >= idleNanos) {
                    reason = "idle";
                    break;
                }
            }
        } catch (RuntimeException e) {
            failure.compareAndSet(null, e);
            reason = "exception";
        }

        boolean closed;
        try {
            // Leave the group: the next run (or the harness deleting the group) does not wait
            // for this member's session to time out.
            closed = streams.close(CloseOptions
                    .groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(CLOSE_TIMEOUT));
        } catch (RuntimeException e) {
            failure.compareAndSet(null, e);
            closed = false;
        }
        KafkaStreams.State finalState = streams.state();
        int code = 0;
        if (failure.get() != null) {
            System.err.println("error: the Kafka Streams instance failed (stopped on " + reason
                    + ", now " + finalState + "):");
            failure.get().printStackTrace();
            code = 1;
        } else if (finalState == KafkaStreams.State.ERROR) {
            System.err.println("error: the Kafka Streams instance went to ERROR");
            code = 1;
        } else if (!closed) {
            System.err.println("error: the Kafka Streams instance did not close within "
                    + CLOSE_TIMEOUT.toSeconds() + " s (state " + finalState + ")");
            code = 1;
        } else if (reason.startsWith("state")) {
            System.err.println("error: the Kafka Streams instance stopped by itself (" + reason
                    + ")");
            code = 1;
        }
        System.out.println("processed " + activity.processed.sum() + " records");
        return code;
    }
}
