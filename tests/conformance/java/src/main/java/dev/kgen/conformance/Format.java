package dev.kgen.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.kstream.WindowedSerdes;

/**
 * A topic's key or value format, as kgen names them ({@code string}, {@code long},
 * {@code json}): how a case file's JSON value becomes the record's bytes, and how an output
 * record's bytes become JSON again. A JSON {@code null} is a null key or value (a tombstone).
 */
enum Format {
    STRING,
    LONG,
    JSON,
    /** A windowed string key (TimeWindowedSerde): read as {"key", "start"}; output only. */
    WINDOWED_STRING,
    /** A session's string key (SessionWindowedSerde): read as {"key", "start", "end"}; output only. */
    SESSION_STRING;

    static final ObjectMapper MAPPER = new ObjectMapper();

    /** kgen's {@code json} format: compact UTF-8 JSON; null stays null. */
    static final Serde<JsonNode> JSON_SERDE = Serdes.serdeFrom(
            (Serializer<JsonNode>) (topic, node) -> {
                if (node == null) {
                    return null;
                }
                try {
                    return MAPPER.writeValueAsBytes(node);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            },
            (Deserializer<JsonNode>) (topic, data) -> {
                if (data == null) {
                    return null;
                }
                try {
                    return MAPPER.readTree(data);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });

    static Format of(String name) {
        return valueOf(name.toUpperCase(java.util.Locale.ROOT));
    }

    /** The bytes of a case file's value. */
    byte[] serialize(JsonNode node) {
        if (node == null || node.isNull()) {
            return null;
        }
        return switch (this) {
            case STRING -> node.asText().getBytes(StandardCharsets.UTF_8);
            case LONG -> new LongSerializer().serialize("", node.asLong());
            case JSON -> JSON_SERDE.serializer().serialize("", node);
            case WINDOWED_STRING, SESSION_STRING -> throw new IllegalArgumentException("windowed keys are output only");
        };
    }

    /** An output record's bytes as JSON. */
    JsonNode deserialize(byte[] data) {
        if (data == null) {
            return JsonNodeFactory.instance.nullNode();
        }
        return switch (this) {
            case STRING -> JsonNodeFactory.instance.textNode(new String(data, StandardCharsets.UTF_8));
            case LONG -> JsonNodeFactory.instance.numberNode(new LongDeserializer().deserialize("", data));
            case JSON -> JSON_SERDE.deserializer().deserialize("", data);
            case WINDOWED_STRING -> {
                var windowed = WindowedSerdes.timeWindowedSerdeFrom(String.class, Long.MAX_VALUE)
                        .deserializer()
                        .deserialize("", data);
                var node = JsonNodeFactory.instance.objectNode();
                node.put("key", windowed.key());
                node.put("start", windowed.window().start());
                yield node;
            }
            case SESSION_STRING -> {
                var windowed = WindowedSerdes.sessionWindowedSerdeFrom(String.class)
                        .deserializer()
                        .deserialize("", data);
                var node = JsonNodeFactory.instance.objectNode();
                node.put("key", windowed.key());
                node.put("start", windowed.window().start());
                node.put("end", windowed.window().end());
                yield node;
            }
        };
    }
}
