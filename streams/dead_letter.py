"""Dead-letter records: the unusable input, where it was, and why."""

from __future__ import annotations

import base64

from models.errors import InvalidRecord
from models.outputs import DeadLetter, DeadLetterError

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
