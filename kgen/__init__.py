"""kgen: typed TOML topology specs -> standalone, exactly-once Kafka stream apps in Python."""

__version__ = "0.1.0"
