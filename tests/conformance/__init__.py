"""The conformance suite: Kafka Streams itself judges kgen's semantics.

Each topology exists twice: a kgen spec in `specs/` and its Java twin in `java/` (run through
Kafka Streams' own TopologyTestDriver). `cases` makes seeded inputs, `kafka_streams` builds and
runs the Java side, and tests/test_conformance.py feeds both and compares what they write.
"""
