"""What the demo prints: lines stamped with the wall clock, and why it stopped."""

from __future__ import annotations

from datetime import datetime


class DemoFailed(Exception):
    """The demo cannot go on; the message says why and where to look."""


def say(text: str = "") -> None:
    print(text, flush=True)


def clock() -> str:
    return datetime.now().strftime("%H:%M:%S")
