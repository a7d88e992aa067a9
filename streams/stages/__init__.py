"""The topology's stages, one module each: what an agent does with one record.

`streams.topology` declares the topics and tables and binds each stage to them as a Faust agent.
"""

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import faust
from faust.streams import _current_event
from faust.types import EventT

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
