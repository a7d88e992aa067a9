"""`usage-detector demo` (see `run`)."""

from tools.demo.run import register

__all__ = ["register"]
