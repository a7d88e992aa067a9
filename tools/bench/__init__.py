"""`usage-detector bench`: the detector measured side by side with a raw Kafka consumer (see `command`)."""

from tools.bench.command import register

__all__ = ["register"]
