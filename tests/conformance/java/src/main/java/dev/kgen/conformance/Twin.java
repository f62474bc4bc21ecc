package dev.kgen.conformance;

import java.util.Map;
import java.util.function.Supplier;
import org.apache.kafka.streams.Topology;

/**
 * The Java twin of one kgen conformance spec: its topology, and the formats (key, value) of the
 * topics it reads and writes, named as in the spec.
 */
record Twin(Supplier<Topology> topology, Map<String, Format[]> inputs, Map<String, Format[]> outputs) {}
