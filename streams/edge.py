"""The edge: an input record's bytes to the account event it carries, or an `InvalidRecord`.

What route-inputs decodes with; the tools that must decode exactly as the detector does (chaos's
oracle, bench's reference) use it too. No Faust here.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import TypeAdapter

from models.codec import decode
from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from models.internal import AccountEvent
from policy.translate import Translator
from streams.topics import TopicNames

HITS = TypeAdapter(TrackingHit)
CAPI = TypeAdapter(ConversionApiEvent)
BILLING = TypeAdapter(BillingEvent)

Decoder = Callable[[bytes | None], AccountEvent]


def edge_decoders(names: TopicNames, edge: Translator, limit: int) -> dict[str, Decoder]:
    """Per input topic: bytes to the account event they carry, or an `InvalidRecord`."""
    return {
        names.hits: lambda value: edge.hit(decode(HITS, value, limit)),
        names.capi: lambda value: edge.capi(decode(CAPI, value, limit)),
        names.billing: lambda value: edge.billing(decode(BILLING, value, limit)),
    }
