"""Every topic the detector touches, declared in one place with its partitions and configs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import AuthorizationError, KafkaError, TopicAlreadyExistsError

from models.errors import ConfigurationError
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
DEAD_LETTER_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def internal_topics(app_id: str) -> tuple[str, str]:
    """The app's own topics: every input re-keyed by account_id (co-partitioned with the
    accounts table), and trial signals keyed by digest (one worker judges each signal)."""
    return (f"{app_id}-account-events", f"{app_id}-signal-claims")


@dataclass(frozen=True)
class TopicNames:
    hits: str
    capi: str
    billing: str
    usage: str
    eligibility: str
    dead_letter: str
    account_events: str
    signal_claims: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        account_events, signal_claims = internal_topics(settings.app_id)
        return cls(
            hits=settings.topic_hits,
            capi=settings.topic_capi,
            billing=settings.topic_billing,
            usage=settings.topic_usage,
            eligibility=settings.topic_eligibility,
            dead_letter=settings.topic_dead_letter,
            account_events=account_events,
            signal_claims=signal_claims,
        )

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.hits, self.capi, self.billing)


def owned_topics(settings: Settings) -> list[TopicSpec]:
    """Topics the detector creates when missing: inputs (theirs, only if absent) and its own."""
    names = TopicNames.from_settings(settings)
    n = settings.partitions
    return [
        *(TopicSpec(name, n) for name in names.inputs),
        TopicSpec(names.usage, n, COMPACTED),
        TopicSpec(names.eligibility, n, COMPACTED),
        TopicSpec(names.dead_letter, n, DEAD_LETTER_CONFIG),
        TopicSpec(names.account_events, n),
        TopicSpec(names.signal_claims, n),
    ]


def ensure_topics(settings: Settings, bootstrap_servers: str, timeout_s: float = 60.0) -> list[str]:
    """Create the missing topics and wait until the broker serves all of them. Returns the names created.

    Existing topics are left as they are. Retries while the broker is unreachable, so a worker
    started before its broker waits for it. Refused credentials or a failed TLS handshake raise
    ConfigurationError at once.
    """
    security = KafkaSecurity.from_settings(settings)
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            # kafka-python only retries on refused credentials until its bootstrap times out, and
            # then says "unable to bootstrap"; this check names the cause, and fails fast on it.
            security.check_access(bootstrap_servers, timeout_s=max(1.0, min(10.0, deadline - time.monotonic())))
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap_servers,
                client_id=f"{settings.app_id}-admin",
                **security.kafka_python_config(),
            )
            break
        except (KafkaError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                if isinstance(exc, ConnectionError):
                    raise  # from check_access: it names the servers and the settings to check
                raise ConnectionError(
                    f"Kafka at {bootstrap_servers} is unreachable ({exc!r}); check KAFKA_BOOTSTRAP_SERVERS"
                ) from exc
            log.warning("Kafka at %s is unreachable (%r); retrying in %.1fs", bootstrap_servers, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    try:
        existing = set(admin.list_topics())
        created = []
        for spec in owned_topics(settings):
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, settings.replication_factor, topic_configs=spec.config)]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        wait_until_served(admin, [spec.name for spec in owned_topics(settings)], deadline)
        return created
    except AuthorizationError as exc:
        raise ConfigurationError(
            f"Kafka at {bootstrap_servers} does not allow {security.describe()} to list or create topics ({exc}): "
            "grant the user Describe and Create on the cluster, or create the topics beforehand"
        ) from None
    finally:
        admin.close()


def wait_until_served(admin: KafkaAdminClient, names: list[str], deadline: float) -> None:
    """Block until the broker's metadata lists every topic with a leader for each partition.

    The controller acknowledges a new topic before the broker's metadata cache has it, and a
    broker that has just started with many partitions lags by seconds. A consumer group that
    joins in that window is assigned nothing, and aiokafka only notices at its next metadata
    refresh; waiting here keeps the first assignment whole.
    """
    delay, reported = 0.1, []
    while True:
        unserved = sorted(
            topic["name"]
            for topic in admin.describe_topics(names)
            if topic["error_code"] or not topic["partitions"] or any(p["leader_id"] < 0 for p in topic["partitions"])
        )
        if not unserved:
            return
        if time.monotonic() > deadline:
            raise ConnectionError(
                f"the broker still does not serve {', '.join(unserved)}; check the broker's log for why"
            )
        if unserved != reported:
            log.info("waiting for the broker to serve %s", ", ".join(unserved))
            reported = unserved
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
