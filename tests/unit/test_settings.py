import argparse
import asyncio
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer

from models.inputs import TrialIdentity, TrialStarted
from policy.account import DEFAULT_DUPLICATE_WINDOW, DuplicateWindow
from streams.app import create_app, create_usage_app
from streams.settings import Settings
from tools.cli import main
from tools.options import add_setting_options, settings_from


def test_defaults_are_the_contracts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"USAGE_DETECTOR_{name.upper()}", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap_servers is None  # the local broker
    assert settings.app_id == "usage-detector"
    assert (settings.topic_hits, settings.topic_capi, settings.topic_billing) == ("tracking.hits", "capi.events", "billing.events")
    assert (settings.topic_usage, settings.topic_eligibility, settings.topic_dead_letter) == (
        "usage.state",
        "refund.eligibility",
        "usage.dead-letter",
    )


def test_environment_is_read_and_options_override_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("USAGE_DETECTOR_APP_ID", "from-env")
    monkeypatch.setenv("USAGE_DETECTOR_API_TOKEN", "s3cret")
    monkeypatch.setenv("USAGE_DETECTOR_PARTITIONS", "12")
    parser = argparse.ArgumentParser()
    add_setting_options(parser)
    settings = settings_from(parser.parse_args(["--app-id", "from-option"]))
    assert settings.kafka_bootstrap_servers == "kafka-1:9092"
    assert settings.app_id == "from-option"
    assert settings.partitions == 12
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_bad_configuration_is_refused_with_the_setting_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--partitions", "0"]) == 2
    err = capsys.readouterr().err
    assert "partitions" in err and "invalid configuration" in err


def test_never_evidence_is_a_comma_separated_list_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_DETECTOR_NEVER_EVIDENCE", " device_id:0000 , email:@agency.example,")
    assert Settings().never_evidence == ("device_id:0000", "email:@agency.example")
    parser = argparse.ArgumentParser()
    add_setting_options(parser)
    assert settings_from(parser.parse_args(["--never-evidence", "website:agency.example"])).never_evidence == ("website:agency.example",)
    monkeypatch.delenv("USAGE_DETECTOR_NEVER_EVIDENCE")
    assert Settings().never_evidence == ()
    assert main(["worker", "--never-evidence", "phone:123"]) == 2


def test_the_policy_gets_the_configured_duplicate_window_and_never_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DUPLICATE_WINDOW_EVENTS", "DUPLICATE_WINDOW_DAYS", "NEVER_EVIDENCE"):
        monkeypatch.delenv(f"USAGE_DETECTOR_{name}", raising=False)
    assert Settings().duplicate_window() == DEFAULT_DUPLICATE_WINDOW
    monkeypatch.setenv("USAGE_DETECTOR_DUPLICATE_WINDOW_EVENTS", "16")
    monkeypatch.setenv("USAGE_DETECTOR_DUPLICATE_WINDOW_DAYS", "0.5")
    monkeypatch.setenv("USAGE_DETECTOR_NEVER_EVIDENCE", "device_id:0000")
    settings = Settings()
    assert settings.duplicate_window() == DuplicateWindow(events=16, max_age_ms=12 * 3_600_000)
    trial = TrialStarted(
        type="trial_started", event_id="t", account_id="a", occurred_at=0, identity=TrialIdentity(device_id="0000", card_fingerprint="c")
    )
    assert [s.kind for s in settings.translator().billing(trial).signals] == ["card_fingerprint"]


def test_a_worker_started_with_the_settings_as_env_reads_back_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tools start workers through the environment (chaos, replay, demo): every setting survives it."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"USAGE_DETECTOR_{name.upper()}", raising=False)
    settings = Settings(
        kafka_bootstrap_servers="kafka-1:9092", api_token="s3cret", partitions=12,
        never_evidence=("device_id:00000000-placeholder", "email:@agency.example"),
    )
    for variable, value in settings.as_env().items():
        monkeypatch.setenv(variable, value)
    assert Settings() == settings


def test_every_consumer_group_takes_the_session_timeout_and_heartbeats_five_times_in_it(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, session_timeout_s=6)
    detector = create_app(settings, "127.0.0.1:1")  # built, never started
    stage = create_usage_app(settings, "127.0.0.1:1", tmp_path / "usage.sock")
    for app in (detector.app, stage.app):
        conf = app.conf
        assert (conf.broker_session_timeout, conf.broker_heartbeat_interval, conf.broker_rebalance_timeout) == (6, 1.2, 12)

        async def agents_consumer(app: faust.App = app) -> AIOKafkaConsumer:
            return app.consumer._thread._create_worker_consumer(app.transport)

        consumer = asyncio.run(agents_consumer())
        assert (consumer._session_timeout_ms, consumer._heartbeat_interval_ms) == (6000, 1200)
    assert stage.topology.firehose.config.session_timeout_s == 6

    async def firehose_consumer() -> AIOKafkaConsumer:
        return stage.topology.firehose._new_consumer()

    consumer = asyncio.run(firehose_consumer())
    assert (consumer._session_timeout_ms, consumer._heartbeat_interval_ms, consumer._rebalance_timeout_ms) == (6000, 1200, 12000)
