"""Profiles of the worker (optional: py-spy)."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path


def start_profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists() and not shutil.which("py-spy"):
        print("[bench] --profile: py-spy not found (pip install py-spy); skipping the profile", file=sys.stderr)
        return None
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200",
               "--format", "raw", "--output", str(output)]  # fmt: skip
    if os.geteuid() != 0:
        command.append("--nonblocking")  # less exact stacks, but needs no ptrace rights
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(collapsed: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Top functions by own time and by time including callees, as shares of all samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for frame in stack.split(";") if frame]  # fmt: skip
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = lambda c: [(name, round(n / max(1, total), 4)) for name, n in c.most_common(top)]
    return {"samples": [("all", total)], "own": share(own), "inclusive": share(inclusive)}
