"""Pins on the upstream code (Faust, mode, aiokafka) that the detector's repairs and subclasses rely on."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

# name -> (the upstream function, the digest of its source when the detector's code was written against it)
Pins = dict[str, tuple[Callable[..., Any], str]]


def digest(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:12]


def assert_unchanged(pins: Pins, name: str, relying_module: str) -> None:
    """A new release that changes a pinned function fails here: read its new code, check that
    `relying_module` still fits it, then update the digest."""
    function, pinned = pins[name]
    assert digest(function) == pinned, f"{name} changed upstream: review {relying_module} against it"
