"""The topology's stages, one module each: what an agent does with one record.

`streams.topology` declares the topics and tables and binds each stage to them as a Faust agent.
"""

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import faust
from faust.streams import _current_event
from faust.types import EventT
from pydantic import TypeAdapter

from models.internal import decode_internal

T = TypeVar("T")

Agent = Callable[[faust.StreamT], Awaitable[None]]
"""What a stage returns: the function `app.agent(topic)` runs over the topic's stream."""


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """`event` as Faust's current event in this task: a table reads and writes (and sends its
    changelog to) the partition of the current event, which Faust does not set for an event
    processed apart from the stream's iteration (a batch from `take_events`, or process-accounts'
    own order). Only the context variable of this task is set, never the stream's `current_event`,
    which the stream's own task sets as it reads on."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def read_stored(raw: bytes | None, adapter: TypeAdapter[T], what: str) -> T | None:
    """A table's stored value, read (None when absent), or an `InvalidRecord` when this worker
    cannot read it. Such a value (most likely written by a newer version during a rolling upgrade)
    is the key's history, and the changelog every worker recovers from: the stage leaves it as it
    is and dead-letters the event, to replay once every worker reads the new version. Starting
    afresh instead would publish versions from 1 again (conflicting records)."""
    return None if raw is None else decode_internal(adapter, raw, what)


def event_time_ms(event: EventT) -> int:
    """When `event` entered its partition: the stamp of the records it causes. Not the clock:
    reprocessing after a crash then rebuilds the very same records, never a conflicting version."""
    return round(event.message.timestamp * 1000)
