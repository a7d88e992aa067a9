"""All configuration, read once from the environment (command-line options override it).

Every variable is listed in the README's "Configuration" table; nothing else reads the
environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from policy.abuse import Holding, NeverEvidence
from policy.account import DEFAULT_DUPLICATE_WINDOW, DuplicateWindow
from policy.translate import Translator

DAY_MS = 86_400_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="USAGE_DETECTOR_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="host:port[,host:port]; unset: the project's local broker (started if needed)",
    )
    app_id: str = Field("usage-detector", pattern=r"^[A-Za-z0-9._\-]{1,100}$")
    topic_hits: str = "tracking.hits"
    topic_capi: str = "capi.events"
    topic_billing: str = "billing.events"
    topic_usage: str = "usage.state"
    topic_eligibility: str = "refund.eligibility"
    topic_dead_letter: str = "usage.dead-letter"
    partitions: int = Field(8, ge=1, le=1024, description="partitions of the topics the detector creates")
    replication_factor: int = Field(1, ge=1, le=16, description="replication of the topics the detector creates")
    web_host: str = Field("127.0.0.1", description="address the HTTP server binds and advertises to other workers")
    web_port: int = Field(6066, ge=1, le=65535)
    api_token: SecretStr | None = Field(None, description="bearer token for /accounts/...; unset: every lookup is 401")
    console_token: SecretStr | None = Field(
        None,
        description="read-only token for the billing team's console (/console); the API token opens it too; "
        "neither set: nobody can log in",
    )
    signal_key: SecretStr = Field(
        SecretStr("development-only-signal-key"),
        description="HMAC-SHA256 secret that hashes identity signals; the same on every worker",
    )
    never_evidence: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="identity values that are never abuse evidence, comma-separated kind:value "
        "(device_id:..., card_fingerprint:..., email:... or email:@domain, website:host); applied to new claims",
    )
    crowded_signal_claimants: int = Field(
        100, ge=2, description="claimants of one signal at which the worker logs it and counts it in /metrics"
    )
    duplicate_window_events: int = Field(
        DEFAULT_DUPLICATE_WINDOW.events, ge=1, description="billing event ids each account remembers to drop duplicates"
    )
    duplicate_window_days: float = Field(
        DEFAULT_DUPLICATE_WINDOW.max_age_ms / DAY_MS,
        gt=0,
        description="of those, only the ones whose occurred_at is at most this much older than the account's newest",
    )
    state_dir: Path = Field(Path("state"), description="local table state of the worker")
    max_record_bytes: int = Field(262_144, ge=1024, description="input values larger than this are dead-lettered")
    usage_filter_accounts: int = Field(
        1_000_000, ge=0, description="accounts whose usage start each worker remembers to drop later hits early"
    )
    usage_filter_save_interval_s: float = Field(
        60.0, gt=0, description="how often the usage filter is saved in the state dir (also saved on stop)"
    )
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="where tables live: rocksdb (files in state_dir, bounded memory, quick restarts) or memory",
    )
    census_interval_s: float = Field(
        120.0, gt=0, description="how often the worker counts its tables' keys and accounts per state for /metrics"
    )
    producer_linger_ms: int = Field(
        0, ge=0, le=1000, description="how long the worker's producer waits to batch sends (latency for fewer requests)"
    )
    firehose_batch_records: int = Field(
        10_000, ge=1, le=1_000_000, description="most hits and Conversion API events the firehose stage takes in one batch"
    )
    stream_buffer_records: int = Field(
        4096,
        ge=16,
        le=1_000_000,
        description="records Faust's agents buffer per stream before it pauses fetching (its stream_buffer_maxsize; "
        "measured by `usage-detector bench --stages agents`)",
    )
    fault_kill_before_commit_batch: int | None = Field(
        None,
        ge=1,
        description="testing only (usage-detector chaos): the worker SIGKILLs itself once the sends of its Nth "
        "forwarding firehose batch are acknowledged, before that batch is committed",
    )
    # How every Kafka client of the worker connects; checked and applied in streams/kafka_security.py.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism with SASL_*: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (environment only)", json_schema_extra={"env_only": True}
    )
    kafka_sasl_password_file: Path | None = Field(None, description="file holding the SASL password instead")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) that verifies the brokers; unset: the system's")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="private key (PEM) of the client certificate")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="password of that private key (environment only)", json_schema_extra={"env_only": True}
    )
    kafka_ssl_check_hostname: bool = Field(True, description="check the broker's host name against its certificate")
    session_timeout_s: float = Field(
        10.0,
        ge=3,
        le=300,
        description="how long the groups wait for a worker that went silent (killed, frozen) before its partitions "
        "move on; it heartbeats five times in that span",
    )
    judge_batch_s: float = Field(
        1.0, gt=0, le=10, description="how long judge-signals gathers claims to judge each signal's together (fewer verdicts in a burst)"
    )
    judge_hold_max_s: float = Field(
        30.0,
        ge=0,
        description="the longest a busy signal (many trials on one device id at once) holds its abuse verdicts "
        "while its claims keep coming (fewer eligibility records per account)",
    )

    @field_validator("never_evidence", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """One string from the environment or an option: entries separated by commas."""
        if isinstance(value, str):
            return tuple(entry.strip() for entry in value.split(",") if entry.strip())
        return value

    @field_validator("never_evidence")
    @classmethod
    def _parses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        NeverEvidence.parse(value)  # a malformed entry stops the worker at start, named
        return value

    def as_env(self, bootstrap_servers: str | None = None) -> dict[str, str]:
        """The environment that makes a worker process use these settings (and these servers)."""
        servers = bootstrap_servers or self.kafka_bootstrap_servers
        env = {"KAFKA_BOOTSTRAP_SERVERS": servers} if servers else {}
        for name, value in self.model_dump(exclude={"kafka_bootstrap_servers"}).items():
            if value is not None:
                secret = getattr(value, "get_secret_value", None)
                text = ",".join(value) if isinstance(value, tuple) else str(secret() if secret else value)
                env[f"USAGE_DETECTOR_{name.upper()}"] = text
        return env

    def translator(self) -> Translator:
        """Where input records become evidence and account events: identities hashed, never-evidence dropped."""
        return Translator(self.signal_key.get_secret_value().encode(), NeverEvidence.parse(self.never_evidence))

    def holding(self) -> Holding:
        return Holding(max_hold_ms=round(self.judge_hold_max_s * 1000))

    def duplicate_window(self) -> DuplicateWindow:
        return DuplicateWindow(events=self.duplicate_window_events, max_age_ms=round(self.duplicate_window_days * DAY_MS))

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    # Durability on a replicated cluster (README: "From one machine to a cluster"; production: 3 and 2).
    min_insync_replicas: int = Field(
        1, ge=1, le=16,
        description="replicas that must have a write before it is acknowledged, on the topics the detector creates "
        "(with replication_factor 3: 2, so that one broker may be lost without losing or refusing writes)",
    )

    @model_validator(mode="after")
    def _writable(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} exceeds replication_factor {self.replication_factor}: "
                "no write to the detector's topics could ever be acknowledged"
            )
        return self
