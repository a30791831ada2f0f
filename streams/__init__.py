"""The stream layer: topics, codecs, dead letters, and the two transports (embedded journal, Kafka)."""

from streams.codec import Rejected, decode, encode
from streams.embedded import EmbeddedBus
from streams.stage import Output, Stage
from streams.transport import Transport

__all__ = ["EmbeddedBus", "Output", "Rejected", "Stage", "Transport", "decode", "encode"]
