"""The bench's status line, rewritten in place on a terminal, printed every few seconds otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """One status line, rewritten in place on a terminal, printed every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        stamp = f"[bench {now - self._started:6.1f}s] {text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + stamp)
            sys.stderr.flush()
        elif force or now - self._last >= 5.0:
            print(stamp, file=sys.stderr, flush=True)
            self._last = now

    def done(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(f"[bench {time.monotonic() - self._started:6.1f}s] {text}", file=sys.stderr, flush=True)


def human(n: float) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"
