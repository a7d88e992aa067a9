"""The bench's results file is committed: it records an allow-list of settings, never a secret."""

import argparse

import orjson
import pytest

from tools.bench.command import options_from, register
from tools.bench.options import bench_settings

SECRETS = {
    "USAGE_DETECTOR_KAFKA_SASL_PASSWORD": "sasl-password-1f3a",
    "USAGE_DETECTOR_KAFKA_SASL_PASSWORD_FILE": "/run/secrets/kafka-password-7c2e",
    "USAGE_DETECTOR_KAFKA_SASL_USERNAME": "sasl-user-9d41",
    "USAGE_DETECTOR_KAFKA_SSL_KEY_PASSWORD": "key-password-5b8e",
    "USAGE_DETECTOR_API_TOKEN": "api-token-2e6f",
    "USAGE_DETECTOR_SIGNAL_KEY": "signal-key-8a07",
    "USAGE_DETECTOR_SOMETHING_ADDED_LATER": "not-on-the-list-4c19",
}


def recorded_settings() -> dict[str, object]:
    commands = argparse.ArgumentParser().add_subparsers()
    register(commands)
    args = commands.choices["bench"].parse_args(["--tiny", "--stages", "lookup"])
    return bench_settings(options_from(args))


def test_no_secret_and_nothing_off_the_allow_list_lands_in_the_results(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("USAGE_DETECTOR_PRODUCER_LINGER_MS", "7")

    settings = recorded_settings()
    text = orjson.dumps(settings).decode()

    for name, value in SECRETS.items():
        assert value not in text, name
        assert name not in text, name
    # What is on the list is still recorded, from the environment and as the worker reads it.
    assert settings["worker_env"] == {"USAGE_DETECTOR_PRODUCER_LINGER_MS": "7"}
    assert settings["worker"]["producer_linger_ms"] == 7  # type: ignore[index]
