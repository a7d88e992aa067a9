"""One worker's Prometheus exposition from its two processes: the accounts process's own registry merged with the
text scraped from the usage process, so that GET /metrics stays one valid exposition of the whole worker."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)
_SUMMED = frozenset({"counter", "histogram", "summary"})  # each process counts its own work


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


def _parsed(text: str) -> dict[str, Metric]:
    families: dict[str, Metric] = {}
    for family in text_string_to_metric_families(text):
        # Text format 0.0.4 puts the `_created` samples of a counter, histogram or summary in a gauge family of
        # their own, where a registry's collect() keeps them in the family: fold them back so both sides line up.
        base = families.get(family.name.removesuffix("_created")) if family.name.endswith("_created") else None
        if base is not None and base.type in _SUMMED:
            base.samples.extend(family.samples)
        else:
            families[family.name] = family
    return families


def merged_exposition(own: CollectorRegistry, other: str) -> bytes:
    """`own`'s exposition with `other`'s (the child's text, "" when unreachable) merged in, family by family."""
    if not other:
        return generate_latest(own)
    try:
        theirs = _parsed(other)
    except Exception:  # whatever the child answered, /metrics still serves this process's metrics
        log.warning("The usage process's metrics are unreadable: serving the accounts process's alone", exc_info=True)
        return generate_latest(own)
    merged: list[Metric] = []
    for mine in own.collect():
        family = Metric(mine.name, mine.documentation, mine.type, mine.unit)
        twin = theirs.pop(mine.name, None)
        their_samples = {_key(s): s for s in twin.samples} if twin is not None else {}
        for sample in mine.samples:
            their = their_samples.pop(_key(sample), None)
            if their is not None and mine.type in _SUMMED:
                # Creation timestamps: the worker's series began when the first of the two did.
                created = sample.name.endswith("_created")
                value = min(sample.value, their.value) if created else sample.value + their.value
                sample = sample._replace(value=value)
            family.samples.append(sample)  # gauges: the parent's value already accounts for the child (readiness)
        family.samples.extend(their_samples.values())
        merged.append(family)
    merged.extend(theirs.values())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(merged))
    return generate_latest(registry)
