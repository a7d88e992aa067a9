"""The edge: an input record's bytes to the account event it carries, or an `InvalidRecord`.

What route-inputs and the firehose decode with; the tools that must decode exactly as the detector does (chaos's
oracle, bench's reference) use it too. No Faust here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from pydantic import TypeAdapter

from models.codec import decode
from models.errors import InvalidRecord
from models.inputs import BillingEvent, ConversionApiEvent, TrackingHit
from models.internal import AccountEvent, UsageObserved
from policy.translate import Translator
from streams.topics import TopicNames

HITS = TypeAdapter(TrackingHit)
CAPI = TypeAdapter(ConversionApiEvent)
BILLING = TypeAdapter(BillingEvent)

T = TypeVar("T")
Decoder = Callable[[bytes | None], T]
log = logging.getLogger(__name__)


def evidence_decoders(names: TopicNames, edge: Translator, limit: int) -> dict[str, Decoder[UsageObserved]]:
    """Hits and Conversion API events: bytes to the evidence of usage they carry, or an `InvalidRecord`."""
    return {
        names.hits: lambda value: edge.hit(decode(HITS, value, limit)),
        names.capi: lambda value: edge.capi(decode(CAPI, value, limit)),
    }


def billing_decoder(edge: Translator, limit: int) -> Decoder[AccountEvent]:
    return lambda value: edge.billing(decode(BILLING, value, limit))


def edge_decoders(names: TopicNames, edge: Translator, limit: int) -> dict[str, Decoder[AccountEvent | UsageObserved]]:
    """Per input topic: bytes to the event they carry, or an `InvalidRecord`."""
    return {**evidence_decoders(names, edge, limit), names.billing: billing_decoder(edge, limit)}


def decode_safely(decoder: Decoder[T], topic: str, value: bytes | None) -> T:
    """Decode at the edge; whatever goes wrong costs this one record (dead-lettered), never the stage."""
    try:
        return decoder(value)
    except InvalidRecord:
        raise
    except Exception as exc:  # a bug of ours, not bad input: keep the record and the traceback
        log.exception("could not process a record of %s; dead-lettering it", topic)
        raise InvalidRecord("unprocessable", f"{type(exc).__name__}: {exc}") from exc
