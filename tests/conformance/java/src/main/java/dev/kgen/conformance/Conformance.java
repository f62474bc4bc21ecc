package dev.kgen.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.File;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;

/**
 * Runs conformance cases through Kafka Streams' own TopologyTestDriver.
 *
 * <p>Usage: {@code java -jar kafka-streams-conformance.jar CASES.json}. The case file is
 * {@code {"TOPOLOGY": [[{"topic", "key", "value", "timestamp"}, ...], ...], ...}}: per topology
 * (a twin in {@link Twins}) a list of cases, each a list of input records. Each case runs in a
 * fresh driver with the record cache off ({@code statestore.cache.max.bytes=0}), so every
 * update is forwarded. After each input record every output topic is read, and each record
 * read is printed to stdout as one JSON line: {@code topology, case, input} (the index of the
 * input record that produced it), {@code topic, key, value, timestamp}. A case whose record
 * makes the topology throw prints {@code {"topology", "case", "input", "error"}} and stops.
 * An entry {@code {"advance": MS}} instead of a record moves the driver's wall-clock time on
 * (advanceWallClockTime: wall-clock punctuations run) and is read after like a record.
 * Exit 0 when every case ran (errors included), 2 on bad arguments.
 */
public final class Conformance {

    private Conformance() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: java -jar kafka-streams-conformance.jar CASES.json");
            System.exit(2);
        }
        JsonNode all = Format.MAPPER.readTree(new File(args[0]));
        Map<String, Twin> twins = Twins.all();
        Path stateDir = Files.createTempDirectory("kgen-conformance-");
        try (PrintWriter out = new PrintWriter(new BufferedWriter(
                new OutputStreamWriter(System.out, StandardCharsets.UTF_8)))) {
            var names = all.fieldNames();
            while (names.hasNext()) {
                String name = names.next();
                Twin twin = twins.get(name);
                if (twin == null) {
                    System.err.println("no twin named " + name + "; known: " + twins.keySet());
                    System.exit(2);
                }
                JsonNode cases = all.get(name);
                for (int c = 0; c < cases.size(); c++) {
                    runCase(name, c, twin, cases.get(c), stateDir, out);
                }
            }
        }
    }

    static Properties config(Path stateDir) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "conformance");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        // The cache off: every update is forwarded, as the kgen driver promises.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // Left and outer stream-stream joins look for closed windows at every record, not
        // once a second of wall-clock time: results that do not depend on the clock, as kgen.
        props.put("__emit.interval.ms.kstreams.outer.join.spurious.results.fix__", 0L);
        return props;
    }

    static void runCase(String name, int caseIndex, Twin twin, JsonNode inputs, Path stateDir, PrintWriter out) {
        try (TopologyTestDriver driver = new TopologyTestDriver(
                twin.topology().get(), config(stateDir), Instant.EPOCH)) {
            Map<String, TestInputTopic<byte[], byte[]>> in = new LinkedHashMap<>();
            for (String topic : twin.inputs().keySet()) {
                in.put(topic, driver.createInputTopic(topic, new ByteArraySerializer(), new ByteArraySerializer()));
            }
            Map<String, TestOutputTopic<byte[], byte[]>> outputs = new LinkedHashMap<>();
            for (String topic : new TreeMap<>(twin.outputs()).keySet()) {  // a fixed order
                outputs.put(topic, driver.createOutputTopic(topic, new ByteArrayDeserializer(), new ByteArrayDeserializer()));
            }
            for (int i = 0; i < inputs.size(); i++) {
                JsonNode record = inputs.get(i);
                if (record.has("advance")) {
                    // Wall-clock time moves on: wall-clock punctuations run.
                    driver.advanceWallClockTime(java.time.Duration.ofMillis(record.get("advance").asLong()));
                    readOutputs(name, caseIndex, i, twin, outputs, out);
                    continue;
                }
                String topic = record.get("topic").asText();
                Format[] formats = twin.inputs().get(topic);
                if (formats == null) {
                    throw new IllegalArgumentException(name + " does not read " + topic);
                }
                try {
                    in.get(topic).pipeInput(
                            formats[0].serialize(record.get("key")),
                            formats[1].serialize(record.get("value")),
                            record.get("timestamp").asLong());
                } catch (RuntimeException e) {
                    ObjectNode line = line(name, caseIndex, i);
                    StringWriter trace = new StringWriter();
                    e.printStackTrace(new PrintWriter(trace));
                    line.put("error", trace.toString());
                    out.println(line);
                    return;
                }
                readOutputs(name, caseIndex, i, twin, outputs, out);
            }
        }
    }

    static void readOutputs(String name, int caseIndex, int i, Twin twin,
            Map<String, TestOutputTopic<byte[], byte[]>> outputs, PrintWriter out) {
        for (var entry : outputs.entrySet()) {
            Format[] outFormats = twin.outputs().get(entry.getKey());
            for (TestRecord<byte[], byte[]> r : entry.getValue().readRecordsToList()) {
                ObjectNode line = line(name, caseIndex, i);
                line.put("topic", entry.getKey());
                line.set("key", outFormats[0].deserialize(r.key()));
                line.set("value", outFormats[1].deserialize(r.value()));
                line.put("timestamp", r.timestamp());
                out.println(line);
            }
        }
    }

    static ObjectNode line(String name, int caseIndex, int input) {
        ObjectNode line = Format.MAPPER.createObjectNode();
        line.put("topology", name);
        line.put("case", caseIndex);
        line.put("input", input);
        return line;
    }
}
