package dev.kgen.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.TableJoined;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.WindowedSerdes;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Java twin of each spec in tests/conformance/specs/, written as a Kafka Streams user
 * would. Each lambda computes what the spec's Python expression computes (lengths in code
 * points, as Python's {@code len}).
 */
final class Twins {

    static final Serde<String> S = Serdes.String();
    static final Serde<Long> L = Serdes.Long();
    static final Serde<JsonNode> J = Format.JSON_SERDE;
    static final Format[] STRING_STRING = {Format.STRING, Format.STRING};
    static final Format[] STRING_LONG = {Format.STRING, Format.LONG};
    static final Format[] STRING_JSON = {Format.STRING, Format.JSON};

    private Twins() {}

    static Map<String, Twin> all() {
        return all("");
    }

    /**
     * Every twin, writing to its sink topics renamed to {@code sinkPrefix + name} (the
     * {@code outputs} of each twin keep the spec's names). {@code all("")} is {@link #all()}:
     * the broker run uses a prefix so that a twin and the kgen app can write side by side.
     */
    static Map<String, Twin> all(String sinkPrefix) {
        return Map.ofEntries(
                Map.entry("stateless", stateless(sinkPrefix)),
                Map.entry("merge", merge(sinkPrefix)),
                Map.entry("wordcount", wordcount(sinkPrefix)),
                Map.entry("reduce", reduce(sinkPrefix)),
                Map.entry("aggregate", aggregate(sinkPrefix)),
                Map.entry("tables", tables(sinkPrefix)),
                Map.entry("regroup", regroup(sinkPrefix)),
                Map.entry("table-ops", tableOps(sinkPrefix)),
                Map.entry("tumbling-count", tumblingCount(sinkPrefix)),
                Map.entry("hopping-final", hoppingFinal(sinkPrefix)),
                Map.entry("sliding-count", slidingCount(sinkPrefix)),
                Map.entry("session-merge", sessionMerge(sinkPrefix)),
                Map.entry("suppress", suppress(sinkPrefix)),
                Map.entry("stream-table-join", streamTableJoin(sinkPrefix)),
                Map.entry("stream-global-join", streamGlobalJoin(sinkPrefix)),
                Map.entry("rekeyed-join", rekeyedJoin(sinkPrefix)),
                Map.entry("table-table-join", tableTableJoin(sinkPrefix)),
                Map.entry("stream-stream-join", streamStreamJoin(sinkPrefix)),
                Map.entry("fk-join", fkJoin(sinkPrefix)),
                Map.entry("processor", processor(sinkPrefix)),
                Map.entry("processor-windows", processorWindows(sinkPrefix)));
    }

    static final Format[] WINDOWED_LONG = {Format.WINDOWED_STRING, Format.LONG};

    /** A named window store, in memory (as {@link #store}). */
    static <V> Materialized<String, V, WindowStore<Bytes, byte[]>> windows(
            String name, Duration retention, Duration size, Serde<V> values) {
        return Materialized.<String, V>as(Stores.inMemoryWindowStore(name, retention, size, false))
                .withKeySerde(S)
                .withValueSerde(values);
    }

    static int len(String s) {
        return s.codePointCount(0, s.length());
    }

    /**
     * A named store. In memory: the same semantics as RocksDB (kgen's default) in a driver, and
     * much faster to open for each case.
     */
    static <V> Materialized<String, V, KeyValueStore<Bytes, byte[]>> store(String name, Serde<V> values) {
        return Materialized.<String, V>as(Stores.inMemoryKeyValueStore(name))
                .withKeySerde(S)
                .withValueSerde(values);
    }

    static Twin stateless(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KStream<String, String> text = builder.stream("text", Consumed.with(S, S));
                    text.filter((k, v) -> v != null && len(v) % 2 == 0)
                            .mapValues(v -> v + "!")
                            .to(sinks + "evens", Produced.with(S, S));
                    text.filterNot((k, v) -> k == null || k.isEmpty())
                            .selectKey((k, v) -> k + "|" + (v == null ? "" : v))
                            .peek((k, v) -> len(k))
                            .to(sinks + "rekeyed", Produced.with(S, S));
                    text.map((k, v) -> KeyValue.pair(v, k))
                            .to((k, v, ctx) -> v != null && v.startsWith("a") ? sinks + "swapped-a" : sinks + "swapped-b",
                                    Produced.with(S, S));
                    text.flatMap((k, v) -> {
                                List<KeyValue<String, String>> out = new ArrayList<>();
                                for (String w : (v == null ? "" : v).split(" ")) {
                                    if (!w.isEmpty()) {
                                        out.add(KeyValue.pair(w, k));
                                    }
                                }
                                return out;
                            })
                            .to(sinks + "words", Produced.with(S, S));
                    text.flatMapValues(v -> v == null || v.isEmpty() ? List.<String>of() : List.of(v, v + "~"))
                            .split()
                            .branch((k, v) -> len(v) > 4, Branched.withConsumer(s -> s.to(sinks + "long", Produced.with(S, S))))
                            .branch((k, v) -> len(v) > 2, Branched.withConsumer(s -> s.to(sinks + "short", Produced.with(S, S))))
                            .defaultBranch(Branched.withConsumer(
                                    s -> s.mapValues(v -> "<" + v + ">").to(sinks + "rest", Produced.with(S, S))));
                    return builder.build();
                },
                Map.of("text", STRING_STRING),
                Map.of(
                        "evens", STRING_STRING,
                        "rekeyed", STRING_STRING,
                        "swapped-a", STRING_STRING,
                        "swapped-b", STRING_STRING,
                        "words", STRING_STRING,
                        "long", STRING_STRING,
                        "short", STRING_STRING,
                        "rest", STRING_STRING));
    }

    static Twin merge(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KStream<String, String> left = builder.stream("left", Consumed.with(S, S));
                    KStream<String, String> right = builder.stream("right", Consumed.with(S, S));
                    left.mapValues(v -> "L:" + (v == null ? "" : v))
                            .merge(right.mapValues(v -> "R:" + (v == null ? "" : v)))
                            .to(sinks + "merged", Produced.with(S, S));
                    // kgen's `from = ["left", "right"]`: one source of two topics. A topic has one
                    // source node in Kafka Streams, so the twin merges the two sources.
                    left.merge(right).to(sinks + "both", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("left", STRING_STRING, "right", STRING_STRING),
                Map.of("merged", STRING_STRING, "both", STRING_STRING));
    }

    static Twin wordcount(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.stream("lines", Consumed.with(S, S))
                            .flatMapValues(v -> {
                                List<String> words = new ArrayList<>();
                                for (String w : (v == null ? "" : v).split(" ")) {
                                    if (!w.isEmpty()) {
                                        words.add(w);
                                    }
                                }
                                return words;
                            })
                            .groupBy((k, w) -> w, Grouped.with(S, S))
                            .count(store("word-counts", L))
                            .toStream()
                            .to(sinks + "word-counts", Produced.with(S, L));
                    return builder.build();
                },
                Map.of("lines", STRING_STRING),
                Map.of("word-counts", STRING_LONG));
    }

    static Twin reduce(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KStream<String, Long> amounts = builder.stream("amounts", Consumed.with(S, L));
                    amounts.groupByKey(Grouped.with(S, L))
                            .reduce(Long::sum, store("sums", L))
                            .toStream()
                            .to(sinks + "sums", Produced.with(S, L));
                    amounts.selectKey((k, v) -> v == null ? "none" : "k" + (v % 3))
                            .groupByKey(Grouped.with(S, L))
                            .reduce(Math::max, store("maxes", L))
                            .toStream()
                            .to(sinks + "maxes", Produced.with(S, L));
                    return builder.build();
                },
                Map.of("amounts", STRING_LONG),
                Map.of("sums", STRING_LONG, "maxes", STRING_LONG));
    }

    static Twin aggregate(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.stream("clicks", Consumed.with(S, J))
                            .selectKey((k, v) -> v == null ? "none" : v.hasNonNull("page") ? v.get("page").asText() : null)
                            .groupByKey(Grouped.with(S, J))
                            .aggregate(
                                    () -> {
                                        ObjectNode init = Format.MAPPER.createObjectNode();
                                        init.put("count", 0);
                                        init.put("sum", 0);
                                        init.putNull("last");
                                        return (JsonNode) init;
                                    },
                                    (k, v, agg) -> {
                                        ObjectNode next = Format.MAPPER.createObjectNode();
                                        next.put("count", agg.get("count").asLong() + 1);
                                        next.put("sum", agg.get("sum").asLong() + v.get("n").asLong());
                                        next.set("last", v.get("user"));
                                        return (JsonNode) next;
                                    },
                                    store("pages", J))
                            .toStream()
                            .to(sinks + "per-page", Produced.with(S, J));
                    return builder.build();
                },
                Map.of("clicks", STRING_JSON),
                Map.of("per-page", STRING_JSON));
    }

    static Twin tables(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.table("users", Consumed.with(S, J), store("users", J))
                            .toStream()
                            .mapValues(v -> v == null || !v.hasNonNull("name") ? null : v.get("name").asText())
                            .to(sinks + "user-names", Produced.with(S, S));
                    builder.table("profiles", Consumed.with(S, S), store("profiles", S))
                            .toStream()
                            .to(sinks + "profile-updates", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("users", STRING_JSON, "profiles", STRING_STRING),
                Map.of("user-names", STRING_STRING, "profile-updates", STRING_STRING));
    }

    static String region(JsonNode v) {
        return v.hasNonNull("region") ? v.get("region").asText() : null;
    }

    static Twin regroup(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.table("members", Consumed.with(S, J), store("members", J))
                            .groupBy((k, v) -> KeyValue.pair(region(v), v), Grouped.with(S, J))
                            .count(store("region-counts", L))
                            .toStream()
                            .to(sinks + "region-counts", Produced.with(S, L));
                    builder.table("accounts", Consumed.with(S, J), store("accounts", J))
                            .groupBy((k, v) -> KeyValue.pair(region(v), v), Grouped.with(S, J))
                            .aggregate(
                                    () -> 0L,
                                    (k, v, agg) -> agg + v.get("amount").asLong(),
                                    (k, v, agg) -> agg - v.get("amount").asLong(),
                                    store("region-totals", L))
                            .toStream()
                            .to(sinks + "region-totals", Produced.with(S, L));
                    return builder.build();
                },
                Map.of("members", STRING_JSON, "accounts", STRING_JSON),
                Map.of("region-counts", STRING_LONG, "region-totals", STRING_LONG));
    }

    static boolean active(JsonNode v) {
        return v.hasNonNull("active") && v.get("active").asBoolean();
    }

    static Twin tableOps(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KTable<String, JsonNode> users = builder.table("t-users", Consumed.with(S, J), store("t-users", J));
                    users.filter((k, v) -> active(v)).toStream().to(sinks + "t-active", Produced.with(S, J));
                    users.filterNot((k, v) -> active(v)).toStream().to(sinks + "t-inactive", Produced.with(S, J));
                    users.mapValues(v -> v.hasNonNull("name") ? v.get("name").asText() : null)
                            .toStream()
                            .to(sinks + "t-names", Produced.with(S, S));
                    users.filter((k, v) -> active(v))
                            .groupBy((k, v) -> KeyValue.pair(region(v), v), Grouped.with(S, J))
                            .count(store("t-active-per-region", L))
                            .toStream()
                            .to(sinks + "t-active-per-region", Produced.with(S, L));
                    // Materialized: the result kept in a store of its own.
                    users.filter((k, v) -> active(v), store("t-active-kept", J))
                            .toStream()
                            .to(sinks + "t-active-kept", Produced.with(S, J));
                    users.mapValues(v -> v.hasNonNull("region") ? v.get("region").asText() : null, store("t-regions-kept", S))
                            .toStream()
                            .to(sinks + "t-regions-kept", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("t-users", STRING_JSON),
                Map.of(
                        "t-active", STRING_JSON,
                        "t-inactive", STRING_JSON,
                        "t-names", STRING_STRING,
                        "t-active-per-region", STRING_LONG,
                        "t-active-kept", STRING_JSON,
                        "t-regions-kept", STRING_STRING));
    }

    static Twin tumblingCount(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    Duration size = Duration.ofMillis(1000);
                    builder.stream("views", Consumed.with(S, S))
                            .groupByKey(Grouped.with(S, S))
                            .windowedBy(TimeWindows.ofSizeAndGrace(size, Duration.ofMillis(500)))
                            .count(windows("view-counts", Duration.ofMillis(1500), size, L))
                            .toStream()
                            .to(sinks + "view-counts",
                                    Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, 1000), L));
                    return builder.build();
                },
                Map.of("views", STRING_STRING),
                Map.of("view-counts", WINDOWED_LONG));
    }

    static Twin hoppingFinal(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    Duration size = Duration.ofMillis(1000);
                    builder.stream("amounts", Consumed.with(S, L))
                            .groupByKey(Grouped.with(S, L))
                            .windowedBy(TimeWindows.ofSizeAndGrace(size, Duration.ofMillis(200))
                                    .advanceBy(Duration.ofMillis(300)))
                            .aggregate(
                                    () -> 0L,
                                    (k, v, agg) -> agg + (v == null ? 0L : v),
                                    windows("hopping-sums", Duration.ofMillis(1200), size, L))
                            .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                            .toStream()
                            .to(sinks + "hopping-sums",
                                    Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, 1000), L));
                    return builder.build();
                },
                Map.of("amounts", new Format[] {Format.STRING, Format.LONG}),
                Map.of("hopping-sums", WINDOWED_LONG));
    }

    static Twin slidingCount(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    Duration difference = Duration.ofMillis(1000);
                    builder.stream("clicks", Consumed.with(S, S))
                            .groupByKey(Grouped.with(S, S))
                            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(difference, Duration.ofMillis(300)))
                            .count(windows("sliding-counts", Duration.ofMillis(2300), difference, L))
                            .toStream()
                            .to(sinks + "sliding-counts",
                                    Produced.with(WindowedSerdes.timeWindowedSerdeFrom(String.class, 1000), L));
                    return builder.build();
                },
                Map.of("clicks", STRING_STRING),
                Map.of("sliding-counts", WINDOWED_LONG));
    }

    static <V> Materialized<String, V, SessionStore<Bytes, byte[]>> sessions(
            String name, Duration retention, Serde<V> values) {
        return Materialized.<String, V>as(Stores.inMemorySessionStore(name, retention))
                .withKeySerde(S)
                .withValueSerde(values);
    }

    static Twin sessionMerge(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    SessionWindows windows =
                            SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(500), Duration.ofMillis(200));
                    KStream<String, String> visits = builder.stream("visits", Consumed.with(S, S));
                    visits.groupByKey(Grouped.with(S, S))
                            .windowedBy(windows)
                            .aggregate(
                                    () -> (JsonNode) JsonNodeFactory.instance.arrayNode(),
                                    (k, v, agg) -> {
                                        ArrayNode out = ((ArrayNode) agg).deepCopy();
                                        out.add(v);
                                        return out;
                                    },
                                    (k, one, two) -> {
                                        ArrayNode out = ((ArrayNode) one).deepCopy();
                                        out.addAll((ArrayNode) two);
                                        return out;
                                    },
                                    sessions("session-pages", Duration.ofMillis(700), J))
                            .toStream()
                            .to(sinks + "session-pages",
                                    Produced.with(WindowedSerdes.sessionWindowedSerdeFrom(String.class), J));
                    visits.groupByKey(Grouped.with(S, S))
                            .windowedBy(windows)
                            .count(sessions("session-counts", Duration.ofMillis(700), L))
                            .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                            .toStream()
                            .to(sinks + "session-counts",
                                    Produced.with(WindowedSerdes.sessionWindowedSerdeFrom(String.class), L));
                    return builder.build();
                },
                Map.of("visits", STRING_STRING),
                Map.of(
                        "session-pages", new Format[] {Format.SESSION_STRING, Format.JSON},
                        "session-counts", new Format[] {Format.SESSION_STRING, Format.LONG}));
    }

    static Twin suppress(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.stream("events", Consumed.with(S, S))
                            .groupByKey(Grouped.with(S, S))
                            .count(store("event-counts", L))
                            .suppress(Suppressed.untilTimeLimit(
                                    Duration.ofMillis(500),
                                    Suppressed.BufferConfig.maxRecords(3).emitEarlyWhenFull()))
                            .toStream()
                            .to(sinks + "held-counts", Produced.with(S, L));
                    builder.table("profiles", Consumed.with(S, S), store("profiles", S))
                            .suppress(Suppressed.untilTimeLimit(
                                    Duration.ofMillis(300), Suppressed.BufferConfig.unbounded()))
                            .toStream()
                            .to(sinks + "held-profiles", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("events", STRING_STRING, "profiles", STRING_STRING),
                Map.of("held-counts", STRING_LONG, "held-profiles", STRING_STRING));
    }

    static JsonNode enriched(JsonNode order, JsonNode customer) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        out.set("order", order);
        out.set("customer", customer == null ? JsonNodeFactory.instance.nullNode() : customer);
        return out;
    }

    static Twin streamTableJoin(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KTable<String, JsonNode> customers =
                            builder.table("customers", Consumed.with(S, J), store("customers", J));
                    KStream<String, JsonNode> orders = builder.stream("orders", Consumed.with(S, J));
                    orders.join(customers, Twins::enriched)
                            .to(sinks + "enriched-inner", Produced.with(S, J));
                    orders.leftJoin(customers, Twins::enriched)
                            .to(sinks + "enriched-left", Produced.with(S, J));
                    return builder.build();
                },
                Map.of("orders", STRING_JSON, "customers", STRING_JSON),
                Map.of("enriched-inner", STRING_JSON, "enriched-left", STRING_JSON));
    }

    /** The lookup key of an order: its "p", or null (missing or JSON null). */
    static String productOf(JsonNode order) {
        JsonNode p = order == null ? null : order.get("p");
        return p == null || p.isNull() ? null : p.asText();
    }

    static JsonNode priced(String key, JsonNode order, JsonNode product) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        out.set("order", order);
        out.set("product", product == null ? JsonNodeFactory.instance.nullNode() : product);
        out.set("key", key == null ? JsonNodeFactory.instance.nullNode() : JsonNodeFactory.instance.textNode(key));
        String lookup = productOf(order);
        out.set("lookup", lookup == null ? JsonNodeFactory.instance.nullNode() : JsonNodeFactory.instance.textNode(lookup));
        return out;
    }

    static Twin streamGlobalJoin(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    GlobalKTable<String, JsonNode> products =
                            builder.globalTable("products", Consumed.with(S, J), store("products", J));
                    KStream<String, JsonNode> orders = builder.stream("orders", Consumed.with(S, J));
                    orders.join(products, (k, v) -> productOf(v), Twins::priced)
                            .to(sinks + "priced-inner", Produced.with(S, J));
                    orders.leftJoin(products, (k, v) -> productOf(v), Twins::priced)
                            .to(sinks + "priced-left", Produced.with(S, J));
                    return builder.build();
                },
                Map.of("orders", STRING_JSON, "products", STRING_JSON),
                Map.of("priced-inner", STRING_JSON, "priced-left", STRING_JSON));
    }

    /** An order's customer, from its value: "c", or null (missing, JSON null, not an object). */
    static String customerOf(JsonNode order) {
        JsonNode c = order == null || !order.isObject() ? null : order.get("c");
        return c == null || c.isNull() ? null : c.asText();
    }

    static Twin rekeyedJoin(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KTable<String, JsonNode> customers =
                            builder.table("customers", Consumed.with(S, J), store("customers", J));
                    KStream<String, JsonNode> orders = builder.stream("orders", Consumed.with(S, J));
                    orders.selectKey((k, v) -> customerOf(v))
                            .join(customers, Twins::enriched, Joined.with(S, J, J))
                            .to(sinks + "rekeyed-inner", Produced.with(S, J));
                    orders.selectKey((k, v) -> customerOf(v))
                            .leftJoin(customers, Twins::enriched, Joined.with(S, J, J))
                            .to(sinks + "rekeyed-left", Produced.with(S, J));
                    return builder.build();
                },
                Map.of("orders", STRING_JSON, "customers", STRING_JSON),
                Map.of("rekeyed-inner", STRING_JSON, "rekeyed-left", STRING_JSON));
    }

    static String orNull(String s) {
        return s == null ? "null" : s;
    }

    static Twin tableTableJoin(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KTable<String, String> a = builder.table("ta", Consumed.with(S, S), store("a", S));
                    KTable<String, String> b = builder.table("tb", Consumed.with(S, S), store("b", S));
                    a.join(b, (x, y) -> x + "+" + y).toStream().to(sinks + "tt-inner", Produced.with(S, S));
                    a.leftJoin(b, (x, y) -> x + "+" + orNull(y)).toStream().to(sinks + "tt-left", Produced.with(S, S));
                    a.outerJoin(b, (x, y) -> orNull(x) + "+" + orNull(y))
                            .toStream()
                            .to(sinks + "tt-outer", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("ta", STRING_STRING, "tb", STRING_STRING),
                Map.of("tt-inner", STRING_STRING, "tt-left", STRING_STRING, "tt-outer", STRING_STRING));
    }

    static String pair(String left, String right) {
        return orNull(left) + "+" + orNull(right);
    }

    /**
     * A stream-stream join's stores, named. In RocksDB, Kafka Streams' default: its in-memory
     * window store differs (a record with a null value moves the store's time on, and so
     * expires records the RocksDB store still joins); kgen joins as the default does.
     */
    static StreamJoined<String, String, String> streamJoined(String name) {
        return StreamJoined.with(S, S, S).withStoreName(name);
    }

    static Twin streamStreamJoin(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KStream<String, String> left = builder.stream("left", Consumed.with(S, S));
                    KStream<String, String> right = builder.stream("right", Consumed.with(S, S));
                    left.join(right, Twins::pair,
                                    JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(500), Duration.ofMillis(200)),
                                    streamJoined("inner"))
                            .to(sinks + "ss-inner", Produced.with(S, S));
                    left.leftJoin(right, Twins::pair,
                                    JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(700), Duration.ZERO)
                                            .before(Duration.ofMillis(300)),
                                    streamJoined("left"))
                            .to(sinks + "ss-left", Produced.with(S, S));
                    left.outerJoin(right, Twins::pair,
                                    JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(400), Duration.ofMillis(500)),
                                    streamJoined("outer"))
                            .to(sinks + "ss-outer", Produced.with(S, S));
                    // Both sides re-keyed: both go through a repartition topic first.
                    left.selectKey((k, v) -> k == null ? null : k + "!")
                            .leftJoin(right.selectKey((k, v) -> k == null ? null : k + "!"), Twins::pair,
                                    JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(500), Duration.ofMillis(100)),
                                    streamJoined("rekeyed"))
                            .to(sinks + "ss-rekeyed", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("left", STRING_STRING, "right", STRING_STRING),
                Map.of("ss-inner", STRING_STRING, "ss-left", STRING_STRING, "ss-outer", STRING_STRING,
                        "ss-rekeyed", STRING_STRING));
    }

    /** An order's product, from its value: "p", or null (missing, JSON null, not an object). */
    static String foreignProductOf(JsonNode order) {
        JsonNode p = order == null || !order.isObject() ? null : order.get("p");
        return p == null || p.isNull() ? null : p.asText();
    }

    static JsonNode withProduct(JsonNode order, String product) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        out.set("order", order);
        if (product == null) {
            out.putNull("product");
        } else {
            out.put("product", product);
        }
        return out;
    }

    static Twin fkJoin(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    KTable<String, JsonNode> orders =
                            builder.table("fk-orders", Consumed.with(S, J), store("fk-orders", J));
                    KTable<String, String> products =
                            builder.table("fk-products", Consumed.with(S, S), store("fk-products", S));
                    orders.join(products, Twins::foreignProductOf, Twins::withProduct, TableJoined.as("fk-inner"))
                            .toStream()
                            .to(sinks + "fk-inner", Produced.with(S, J));
                    orders.leftJoin(products, Twins::foreignProductOf, Twins::withProduct, TableJoined.as("fk-left"))
                            .toStream()
                            .to(sinks + "fk-left", Produced.with(S, J));
                    return builder.build();
                },
                Map.of("fk-orders", STRING_JSON, "fk-products", STRING_STRING),
                Map.of("fk-inner", STRING_JSON, "fk-left", STRING_JSON));
    }

    /** The Processor API: a processor with a store and both kinds of punctuation ({@link Tally}), DSL steps after it. */
    static Twin processor(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.addStateStore(Stores.keyValueStoreBuilder(Stores.inMemoryKeyValueStore("tally"), S, L));
                    builder.stream("events", Consumed.with(S, S))
                            .process(Tally::new, "tally")
                            .filter((k, v) -> !"a".equals(k))
                            .mapValues(v -> v + "!")
                            .to(sinks + "tallies", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("events", STRING_STRING),
                Map.of("tallies", STRING_STRING));
    }

    /** The Processor API with a window store and a session store ({@link Spans}), expired windows and sessions included. */
    static Twin processorWindows(String sinks) {
        return new Twin(
                () -> {
                    StreamsBuilder builder = new StreamsBuilder();
                    builder.addStateStore(Stores.windowStoreBuilder(
                            Stores.inMemoryWindowStore("spans-windows", Duration.ofMillis(2000), Duration.ofMillis(1000), false),
                            S, L));
                    builder.addStateStore(Stores.sessionStoreBuilder(
                            Stores.inMemorySessionStore("spans-sessions", Duration.ofMillis(1500)), S, L));
                    builder.stream("events", Consumed.with(S, S))
                            .process(Spans::new, "spans-windows", "spans-sessions")
                            .to(sinks + "spans", Produced.with(S, S));
                    return builder.build();
                },
                Map.of("events", STRING_STRING),
                Map.of("spans", STRING_STRING));
    }
}
