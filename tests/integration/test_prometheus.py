"""A real Prometheus (Debian's `prometheus`) with the project's config and alert rules, scraping
two real workers fed realistic traffic: /metrics answers from the first request through a
rebalance, every dashboard query returns series, and a paused or stopped worker raises its alert.

The config is ops/prometheus/prometheus.yml itself, with this test's workers as the targets and
intervals of a second; the rules are ops/prometheus/alerts.yml as shipped. An alert is looked for
as pending or firing, so its `for:` does not make the test wait.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
import yaml

from localkafka import free_port
from tests.integration.conftest import Detector, start_detector
from tests.support.worker import WorkerProcess
from tests.unit.test_compose import DASHBOARD_FILE, dashboard_exprs
from tools.supervisor import HTTP

pytestmark = pytest.mark.integration

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "prometheus.yml"
# Crowded signals show on the dashboard: the traffic's repeated trials share a card with one other account.
WORKER_ENV = {"USAGE_DETECTOR_CROWDED_SIGNAL_CLAIMANTS": "2"}
# Grafana's variables, as a dashboard over the last minutes would set them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m"}


@dataclass
class Answer:
    url: str
    status: int
    exposition: str
    health: dict[str, Any]


class Scrapes:
    """GET /healthz then /metrics of some workers, over and over, keeping every answer."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for url in list(self.urls):
                try:
                    health = HTTP.get(f"{url}/healthz", timeout=5)
                    metrics = HTTP.get(f"{url}/metrics", timeout=5)
                except httpx.HTTPError:  # not listening yet
                    continue
                self.answers.append(Answer(url, metrics.status_code, metrics.text, health.json()))
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Prometheus:
    """The `prometheus` server on a port of its own, with its data and log under `directory`."""

    def __init__(self, config: dict[str, Any], directory: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus not found: run scripts/setup (it installs Debian's prometheus package)"
        config_file = directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), "utf-8")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = directory / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited; its log {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
        try:
            return HTTP.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = HTTP.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        return list(answer["data"]["result"])

    def active_alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        """The alert's pending or firing instances with these labels."""
        alerts = HTTP.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name and labels.items() <= a["labels"].items()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def prometheus_config(targets: list[str]) -> dict[str, Any]:
    """The shipped config, scraping `targets` and evaluating the shipped rules every second."""
    config = yaml.safe_load(SHIPPED_CONFIG.read_text("utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(SHIPPED_CONFIG.parent / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": targets}]
    return config


def traffic(detector: Detector, log_path: Path) -> subprocess.Popen[bytes]:
    """`usage-detector generate`: realistic records stamped with the wall clock, until stopped."""
    env = {**os.environ, **detector.topics.env(), "KAFKA_BOOTSTRAP_SERVERS": detector.bootstrap_servers, "USAGE_DETECTOR_PARTITIONS": "4"}
    command = [sys.executable, "-m", "tools.cli", "generate", "--rate", "300", "--accounts", "40", "--seed", "3"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Observed:
    detector: Detector
    prometheus: Prometheus
    scrapes: Scrapes  # of both workers from their start until both were ready

    def instance(self, worker: WorkerProcess) -> str:
        return worker.url.removeprefix("http://")

    def wait_for(self, what: str, condition: Any, timeout: float = 30.0) -> Any:
        return self.detector.tail.wait_for(what, condition, timeout)


@pytest.fixture(scope="module")
def observed(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    """Worker A (a census interval far longer than the test, so only the census at start can
    show), traffic, then worker B joining (a rebalance, under load), Prometheus scraping both."""
    directory = tmp_path_factory.mktemp("prometheus")
    ports = [free_port(), free_port()]
    with ExitStack() as cleanup:  # on the way out: traffic, then the workers and topics, then Prometheus
        prometheus = Prometheus(prometheus_config([f"127.0.0.1:{port}" for port in ports]), directory)
        cleanup.callback(prometheus.stop)
        with Scrapes() as scrapes:
            scrapes.urls.append(f"http://127.0.0.1:{ports[0]}")
            first_env = {**WORKER_ENV, "USAGE_DETECTOR_WEB_PORT": str(ports[0]), "USAGE_DETECTOR_CENSUS_INTERVAL_S": "600"}
            started = start_detector(bootstrap_servers, directory, extra_env=first_env)
            detector = next(started)
            cleanup.callback(next, started, None)
            generator = traffic(detector, directory / "generate.log")
            cleanup.callback(generator.wait, 30)
            cleanup.callback(generator.terminate)
            scrapes.urls.append(f"http://127.0.0.1:{ports[1]}")
            joining = WorkerProcess(bootstrap_servers, detector.topics, directory, {**WORKER_ENV, "USAGE_DETECTOR_WEB_PORT": str(ports[1])})
            detector.workers.append(joining)  # stopped with the others
            joining.wait_ready()
        detector.tail.wait_for("Prometheus to be ready", prometheus.ready)
        yield Observed(detector, prometheus, scrapes)


def promtool_check_metrics(exposition: str) -> str:
    """promtool's findings on an exposition ("" when it has none)."""
    tool = shutil.which("promtool")
    assert tool, "promtool not found: run scripts/setup (it installs Debian's prometheus package)"
    checked = subprocess.run([tool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30, check=False)
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr


def test_metrics_answer_from_the_first_request_through_a_rebalance(observed: Observed) -> None:
    answers = observed.scrapes.answers
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} scrapes failed, the first: {failed[0].status} {failed[0].exposition[:300]}"
    for worker in observed.detector.workers:
        own = [a for a in answers if a.url == worker.url]
        starting = [a for a in own if a.health["status"] != "ok"]
        rebalancing = [a for a in own if a.health["rebalancing"]]
        assert starting and rebalancing, f"{worker.url} was never scraped while starting and while rebalancing"
        for answer in (own[0], rebalancing[0], rebalancing[-1], own[-1]):
            assert promtool_check_metrics(answer.exposition) == "", answer.exposition


def test_the_census_is_taken_at_start(observed: Observed) -> None:
    first = observed.detector.workers[0]  # its next census is due in 10 minutes

    def census() -> str | None:
        exposition = HTTP.get(f"{first.url}/metrics").text
        return exposition if "usage_detector_census_age_seconds " in exposition else None

    assert 'usage_detector_table_keys{table="accounts"}' in observed.wait_for("the census at start", census, timeout=10)


def test_every_dashboard_query_returns_series_after_traffic(observed: Observed) -> None:
    queries = []
    for expr in dashboard_exprs(json.loads(DASHBOARD_FILE.read_text("utf-8"))["panels"]):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        queries.append(expr)

    def empty() -> list[str]:
        return [expr for expr in queries if not observed.prometheus.query(expr)]

    try:
        observed.wait_for("every dashboard query to return series", lambda: not empty(), timeout=60)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; still empty: {empty()}") from timed_out
    # Only partitions an agent reads: a changelog's "lag" would be its length, growing forever.
    assert observed.prometheus.query('usage_detector_consumer_lag{topic=~".*-changelog"}') == []
    for worker in observed.detector.workers:  # with every family filled in
        assert promtool_check_metrics(HTTP.get(f"{worker.url}/metrics").text) == ""


def test_a_paused_worker_is_not_scraped_and_its_backlog_breaks_the_lag_objective(observed: Observed) -> None:
    paused = observed.detector.workers[1]
    instance = observed.instance(paused)
    prometheus = observed.prometheus
    observed.wait_for("usage starts on both workers", lambda: len(prometheus.query("usage_detector_usage_start_lag_seconds_count > 0")) == 2)
    observed.wait_for("the worker to be scraped", lambda: not prometheus.active_alerts("WorkerDown", instance=instance))
    os.kill(paused.pid, signal.SIGSTOP)
    try:  # the traffic goes on meanwhile
        observed.wait_for("WorkerDown for the paused worker", lambda: prometheus.active_alerts("WorkerDown", instance=instance))
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # Its backlog's usage starts come seconds late. (On a crowded machine the objective can be
    # missed before the pause already: the generator stamps records on its schedule, up to 2 s
    # behind it; WorkerDown above is the check that tells this worker's pause.)
    observed.wait_for("UsageStartLagOverObjective", lambda: prometheus.active_alerts("UsageStartLagOverObjective"))


def test_a_stopped_worker_is_not_scraped(observed: Observed) -> None:
    stopped = observed.detector.workers[1]
    instance = observed.instance(stopped)
    observed.wait_for("the worker to be scraped", lambda: not observed.prometheus.active_alerts("WorkerDown", instance=instance))
    stopped.stop()
    observed.wait_for("WorkerDown for the stopped worker", lambda: observed.prometheus.active_alerts("WorkerDown", instance=instance))
