"""The worker's usage app in a child process: started with the worker, watched, stopped with it.

The child (`streams.usage_worker`) runs the firehose and process-usage on a core of its own, so
that a storm of trials and verdicts in this process never delays a usage start. The two are one
worker: the child dies with this process, even by SIGKILL (`PR_SET_PDEATHSIG`); this process stops
when the child ends unasked (whoever runs the worker restarts both); this process's /healthz and
/metrics include the child's, fetched over a Unix socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from mode import Service

from streams.settings import Settings

log = logging.getLogger(__name__)
WATCH_EVERY_S = 0.25  # how soon the worker sees the child's health change, or its end
ASK_TIMEOUT = aiohttp.ClientTimeout(total=5)
STOP_TIMEOUT_S = 60.0  # the child's graceful stop (its revocation, commit, leaving its groups), then SIGKILL
FOLDER_PREFIX = "usage-detector-usage-"
STALE_AFTER_S = 60.0  # a folder this old whose socket nobody listens on belongs to a worker that was killed


class UsageProcessEnded(Exception):
    """The usage process ended while the worker ran; the message says how (its log is the worker's)."""


class UsageProcess(Service):
    def __init__(self, settings: Settings, bootstrap_servers: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._env = {**os.environ, **settings.as_env(bootstrap_servers)}
        self._folder: Path | None = None
        self.child: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.ready = False
        self.health: dict[str, object] = {"status": "not started"}
        self.ended: UsageProcessEnded | None = None  # how it ended, when it ended unasked

    @property
    def socket(self) -> Path:
        if self._folder is None:
            raise RuntimeError("the usage process is not started")
        return self._folder / "usage.sock"

    async def on_start(self) -> None:
        # A folder of its own under /tmp: a Unix socket's path must stay under 108 bytes.
        remove_stale_folders()
        self._folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        command = [sys.executable, "-m", "streams.usage_worker", str(self.socket), str(os.getpid())]
        # Its log goes where this process's goes. A session of its own: a Ctrl-C in the terminal
        # reaches this process only, which then stops the child (an end it did not ask for stops the worker).
        self.child = await asyncio.create_subprocess_exec(*command, env=self._env, start_new_session=True)
        self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.socket)), timeout=ASK_TIMEOUT)
        log.info("usage process started (pid %d)", self.child.pid)

    async def on_stop(self) -> None:
        child = self.child
        if child is not None and child.returncode is None:
            log.info("stopping the usage process (pid %d)", child.pid)
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the usage process did not stop within %.0fs; killing it", STOP_TIMEOUT_S)
                child.kill()
                await child.wait()
        if self._session is not None:
            await self._session.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            child = self.child
            if child is not None and (code := child.returncode) is not None:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                log.error("the usage process (pid %d) %s; the worker stops (its log is this log)", child.pid, how)
                self.ready, self.health = False, {"status": "ended", "exit_code": code}
                self.ended = UsageProcessEnded(f"the usage process {how}")
                # Stopped as a SIGTERM stops it, then exits with code 1 (`streams.worker`). Not by
                # crashing this service: that stopped the consumer before the app's last commit,
                # which then waited for it forever (seen in `usage-detector chaos`).
                signal.raise_signal(signal.SIGTERM)
                return
            self.ready, self.health = await self._ask_health()
            await self.sleep(WATCH_EVERY_S)

    async def _ask_health(self) -> tuple[bool, dict[str, object]]:
        try:
            status, body = await self._get("/healthz")
            health: dict[str, object] = orjson.loads(body)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            return False, {"status": "not answering", "error": repr(error)}  # starting, or stuck
        return status == 200, health

    async def metrics_text(self) -> str:
        """The child's metrics in Prometheus' text format, or "" while it does not answer."""
        try:
            status, body = await self._get("/metrics")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.warning("the usage process's metrics are missing from this scrape: %r", error)
            return ""
        return body if status == 200 else ""

    async def _get(self, path: str) -> tuple[int, str]:
        if self._session is None:
            raise aiohttp.ClientConnectionError("the usage process is not started")
        async with self._session.get(f"http://usage{path}") as response:
            return response.status, await response.text()


def remove_stale_folders() -> None:
    """Removes the socket folders of workers killed with SIGKILL (they could not remove their own):
    old enough that their usage process has long bound its socket, and nobody listening on it."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            if time.time() - folder.stat().st_mtime < STALE_AFTER_S or listening(folder / "usage.sock"):
                continue
        except OSError:  # another worker removed it meanwhile
            continue
        shutil.rmtree(folder, ignore_errors=True)


def listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:  # absent, or nobody accepting
            return False
    return True
