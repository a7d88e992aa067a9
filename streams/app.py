"""The Faust applications of a worker, built from settings, nothing at import time.

The accounts app (route-inputs, process-accounts, judge-signals; HTTP) runs in the worker's
process; the usage app (firehose, process-usage) in a child process of its own
(`streams.usage_process`), with its own consumer group, so that neither waits for the other's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from streams import durable_producer, kafka_inputs, rebalance
from streams.console.views import install_console
from streams.health import readiness, usage_readiness, watch_broker
from streams.kafka_security import KafkaSecurity
from streams.metrics import Metrics
from streams.prompt_start import PromptTableManager
from streams.settings import Settings
from streams.store import store_url
from streams.topics import usage_group
from streams.topology import AccountsTopology, UsageTopology, build_accounts_topology, build_usage_topology
from streams.usage_process import UsageProcess
from streams.views import register_usage_views, register_views


@dataclass(frozen=True)
class Detector:
    app: faust.App
    topology: AccountsTopology
    metrics: Metrics
    usage: UsageProcess  # started with the worker, before the app


@dataclass(frozen=True)
class UsageStage:
    app: faust.App
    topology: UsageTopology
    metrics: Metrics


def faust_app(app_id: str, settings: Settings, bootstrap_servers: str, **web: Any) -> tuple[faust.App, Metrics]:
    """A Faust app as every one of the detector's is configured, with the repairs installed; `web`: where it serves HTTP."""
    app = faust.App(
        app_id,
        broker=";".join(f"kafka://{server.strip()}" for server in bootstrap_servers.split(",")),
        broker_credentials=KafkaSecurity.from_settings(settings).faust_credentials(),  # consumer, producer, topic creation
        store=store_url(settings.store),
        datadir=str(settings.state_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,  # all in-sync replicas; idempotence: streams/durable_producer.py
        producer_linger=settings.producer_linger_ms / 1000,
        # A killed worker's partitions move on within seconds, not the client default of a minute.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 5,
        broker_rebalance_timeout=settings.session_timeout_s * 2,
        # A topic the broker did not yet serve when the group formed (Faust's changelogs, created
        # just before it subscribes) joins the assignment at the next refresh: seconds, not 5 min.
        consumer_metadata_max_age_ms=5000,
        stream_buffer_maxsize=settings.stream_buffer_records,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        # Faust's /table/ pages answer any key's stored state to anyone: the accounts are served by
        # /accounts/{id}, behind the token. (/router/, which names each key's worker, stays.)
        web_tables_enabled=False,
        autodiscover=False,
        TableManager=PromptTableManager,  # no fixed second of sleep at start
        **web,
    )
    metrics = Metrics()
    rebalance.install(app)
    kafka_inputs.install(app, metrics.unreadable_inputs)  # the eager-delivery consumer, reading committed records
    durable_producer.install(app)  # on the transport kafka_inputs installed: acks=all, idempotent
    return app, metrics


def create_app(settings: Settings, bootstrap_servers: str) -> Detector:
    """The accounts app, and the worker's usage process, whose health and metrics it serves as its own."""
    app, metrics = faust_app(
        settings.app_id,
        settings,
        bootstrap_servers,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
    )
    topology = build_accounts_topology(app, settings, metrics)
    probe = watch_broker(app, bootstrap_servers)
    usage = UsageProcess(settings, bootstrap_servers, loop=app.loop)

    def ready() -> tuple[bool, dict[str, object]]:
        return readiness(app, probe, usage)

    metrics.ready.set_function(lambda: float(ready()[0]))
    register_views(app, settings, topology.accounts, metrics, ready, usage)
    install_console(app, settings, topology.accounts, topology.topics.eligibility, bootstrap_servers)
    return Detector(app=app, topology=topology, metrics=metrics, usage=usage)


def create_usage_app(settings: Settings, bootstrap_servers: str, socket: Path) -> UsageStage:
    """The usage app, serving its health and metrics to the worker's process on a Unix socket."""
    app, metrics = faust_app(usage_group(settings.app_id), settings, bootstrap_servers, web_transport=f"unix://{socket}")
    topology = build_usage_topology(app, settings, metrics, bootstrap_servers)
    probe = watch_broker(app, bootstrap_servers)

    def ready() -> tuple[bool, dict[str, object]]:
        return usage_readiness(app, probe, topology.firehose)

    metrics.ready.set_function(lambda: float(ready()[0]))
    register_usage_views(app, metrics, ready)
    return UsageStage(app=app, topology=topology, metrics=metrics)
