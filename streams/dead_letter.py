"""Dead-letter records: the unusable input, where it was, and why."""

from __future__ import annotations

import base64
import time

import faust
from faust.types import EventT

from models.codec import encode
from models.errors import InvalidRecord
from models.outputs import DeadLetter, DeadLetterError
from streams.metrics import Metrics

RAW_LIMIT = 64 * 1024


def as_text(data: bytes | None, limit: int | None = None) -> str | None:
    """UTF-8 text when the bytes are UTF-8, base64 otherwise; cut to `limit` bytes first."""
    if data is None:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data[:limit]).decode("ascii")
    # Cutting may split a character; drop the partial one rather than switch to base64.
    return data[:limit].decode("utf-8", "ignore")


def dead_letter(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, error: InvalidRecord, now: int
) -> DeadLetter:
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key=as_text(key),
        error=DeadLetterError(code=error.code, message=error.message[:1024]),
        raw=as_text(value, RAW_LIMIT),
        dead_lettered_at=now,
    )


class DeadLetters:
    """Sends each unusable record to the dead-letter topic, where it was and why, and counts it."""

    def __init__(self, topic: faust.TopicT, metrics: Metrics) -> None:
        self._topic = topic
        self._metrics = metrics

    async def send(self, event: EventT, error: InvalidRecord) -> None:
        message = event.message
        letter = dead_letter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=event.key,
            value=event.value,
            error=error,
            now=time.time_ns() // 1_000_000,
        )
        await self._topic.send(key=event.key, value=encode(letter))
        self._metrics.dead_letters.labels(message.topic, error.code).inc()
