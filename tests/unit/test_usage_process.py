"""The socket folders of killed workers are removed by the next worker to start; live ones never."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from streams.usage_process import FOLDER_PREFIX, STALE_AFTER_S, remove_stale_folders


def folder(root: Path, name: str, age_s: float) -> Path:
    made = root / f"{FOLDER_PREFIX}{name}"
    made.mkdir()
    then = time.time() - age_s
    os.utime(made, (then, then))
    return made


def test_only_old_folders_whose_socket_nobody_listens_on_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    old = STALE_AFTER_S + 10
    killed_before_binding = folder(tmp_path, "a", old)
    killed = folder(tmp_path, "b", old)
    closed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    closed.bind(str(killed / "usage.sock"))  # the file stays, nobody listens
    closed.close()
    live = folder(tmp_path, "c", old)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(live / "usage.sock"))
    server.listen()
    starting = folder(tmp_path, "d", 1)  # its usage process has not bound its socket yet
    other = tmp_path / "usage-detector-ports"  # not a socket folder
    other.mkdir()
    for bound in (killed, live):  # binding touched them
        os.utime(bound, (time.time() - old, time.time() - old))
    try:
        remove_stale_folders()
    finally:
        server.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, starting.name, other.name])
    assert not killed_before_binding.exists() and not killed.exists()
