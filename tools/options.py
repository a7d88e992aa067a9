"""What every command shares: one option per setting, the settings they make, and the brokers to use."""

from __future__ import annotations

import argparse
from typing import Any

import localkafka
from models.errors import ConfigurationError
from streams.settings import Settings


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting (--app-id for USAGE_DETECTOR_APP_ID, ...), defaulting to the env.

    Passwords marked `env_only` get none: a command line is visible to every user of the host."""
    for name, field in Settings.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("env_only"):
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=field.description)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None
    }
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise ConfigurationError(f"invalid configuration:\n{exc}") from exc


def bootstrap_servers(settings: Settings) -> str:
    """The configured brokers, or the project's local broker (started when not running)."""
    return settings.kafka_bootstrap_servers or localkafka.start().bootstrap_servers
