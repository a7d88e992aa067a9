"""Every topic the detector touches, declared in one place: its name, partitions, configs and role.

The registry (`Topics`) is what the worker creates, what it checks before it starts, what the
Faust topology declares, and what bench, explain and docker-compose.yml create or read:

    role          topics                                     created   checked at start
    input         tracking.hits, capi.events, billing.events if absent never: the producers' own
    output        usage.state, refund.eligibility            if absent compacted
    dead letter   usage.dead-letter                          if absent never
    internal      <app_id>-usage-evidence, -account-events,  if absent exactly `partitions`
                  -signal-claims
    changelog     <app_id>-usage-changelog, -accounts-…,     if absent compacted, exactly `partitions`
                  -signals-…

Every topic the detector creates gets USAGE_DETECTOR_REPLICATION_FACTOR replicas and
`min.insync.replicas` USAGE_DETECTOR_MIN_INSYNC_REPLICAS (in its config, so that the broker's
default cannot make it unwritable or less safe); an existing one of the detector's own with fewer
replicas, or a lower `min.insync.replicas`, is named at start as under-replicated.

Internal topics and changelogs are co-partitioned with the tables: the worker that owns an
account's partition of `account-events` holds the same partition of `accounts` (and of
`usage-evidence`, the same of `usage`). Any other partition count sends an account's events to
one worker and its state to another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import AuthorizationError, KafkaError, TopicAlreadyExistsError

from models.errors import ConfigurationError
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
DEAD_LETTER_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}
# What Faust gives a table's changelog when it creates one (`compacting=True`).
CHANGELOG_CONFIG = {"cleanup.policy": "compact"}
# With acks=all, a write succeeds once this many replicas have it (the leader included).
MIN_INSYNC = "min.insync.replicas"

# The Faust tables, whose changelogs are named `<app_id>-<table>-changelog`.
USAGE_TABLE = "usage"
ACCOUNTS_TABLE = "accounts"
SIGNALS_TABLE = "signals"

# The topics named by a setting (shared with other services), by their TopicNames field.
SETTING_OF = {
    "hits": "topic_hits",
    "capi": "topic_capi",
    "billing": "topic_billing",
    "usage": "topic_usage",
    "eligibility": "topic_eligibility",
    "dead_letter": "topic_dead_letter",
}


class Role(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    DEAD_LETTER = "dead letter"
    INTERNAL = "internal"
    CHANGELOG = "changelog"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    role: Role
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    table: str | None = None  # the Faust table a changelog backs
    replication_factor: int = 1

    @property
    def min_insync_replicas(self) -> int:
        return int(self.config.get(MIN_INSYNC, "1"))

    @property
    def compacted(self) -> bool:
        return self.config.get("cleanup.policy") == "compact"

    @property
    def copartitioned(self) -> bool:
        """Partitioned exactly like the tables (see the module's docstring)."""
        return self.role in (Role.INTERNAL, Role.CHANGELOG)

    def topic_options(self) -> dict[str, Any]:
        """Keyword arguments of `app.topic(spec.name, ...)`: what Faust declares it with."""
        return {"partitions": self.partitions, "replicas": self.replication_factor, "config": dict(self.config)}

    def table_options(self) -> dict[str, Any]:
        """Keyword arguments of `app.Table(...)` for the table this changelog backs."""
        if self.table is None:
            raise ValueError(f"{self.name} is no table's changelog")
        return {"name": self.table, "partitions": self.partitions, "extra_topic_configs": dict(self.config)}


def changelog_name(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


@dataclass(frozen=True)
class TopicNames:
    """The names of every topic the detector touches; `Topics` has the rest of each one's spec."""

    hits: str
    capi: str
    billing: str
    usage: str
    eligibility: str
    dead_letter: str
    # The app's own: evidence of usage and account events, keyed by account_id (co-partitioned with
    # the usage and accounts tables), and trial signals keyed by digest (one worker judges each
    # signal); the tables' changelogs.
    usage_evidence: str
    account_events: str
    signal_claims: str
    usage_changelog: str
    accounts_changelog: str
    signals_changelog: str

    @classmethod
    def of(cls, app_id: str, named: Mapping[str, str]) -> TopicNames:
        """`named`: the setting-named topics by field (see SETTING_OF); the app's own follow `app_id`."""
        return cls(
            **named,
            usage_evidence=f"{app_id}-usage-evidence",
            account_events=f"{app_id}-account-events",
            signal_claims=f"{app_id}-signal-claims",
            usage_changelog=changelog_name(app_id, USAGE_TABLE),
            accounts_changelog=changelog_name(app_id, ACCOUNTS_TABLE),
            signals_changelog=changelog_name(app_id, SIGNALS_TABLE),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        return cls.of(settings.app_id, {name: getattr(settings, setting) for name, setting in SETTING_OF.items()})

    @classmethod
    def prefixed(cls, prefix: str, app_id: str) -> TopicNames:
        """A topic set of its own (tests, bench, chaos): each setting-named topic `<prefix>.<default name>`."""
        defaults = {name: f"{prefix}.{Settings.model_fields[setting].default}" for name, setting in SETTING_OF.items()}
        return cls.of(app_id, defaults)

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.hits, self.capi, self.billing)

    @property
    def internal(self) -> tuple[str, str]:
        """The app's own topics the accounts' consumer group commits on (changelogs are never committed)."""
        return (self.account_events, self.signal_claims)

    @property
    def firehose(self) -> tuple[str, str]:
        """The inputs the firehose stage reads, in a consumer group of its own (`firehose_group`)."""
        return (self.hits, self.capi)


def firehose_group(app_id: str) -> str:
    return f"{app_id}-firehose"


def usage_group(app_id: str) -> str:
    """The usage stage's Faust app (`streams.usage_worker`): its id, and so its consumer group."""
    return f"{app_id}-usage"


def consumer_groups(app_id: str, names: TopicNames) -> dict[str, tuple[str, ...]]:
    """Each consumer group of the app's workers and the topics it commits on: the accounts' agents
    (the group is the app id), the firehose stage and the usage stage. The app is caught up when all are."""
    return {
        app_id: (names.billing, *names.internal),
        firehose_group(app_id): names.firehose,
        usage_group(app_id): (names.usage_evidence,),
    }


@dataclass(frozen=True)
class Topics:
    """The registry: each topic's spec, by the same field names as TopicNames."""

    hits: TopicSpec
    capi: TopicSpec
    billing: TopicSpec
    usage: TopicSpec
    eligibility: TopicSpec
    dead_letter: TopicSpec
    usage_evidence: TopicSpec
    account_events: TopicSpec
    signal_claims: TopicSpec
    usage_changelog: TopicSpec
    accounts_changelog: TopicSpec
    signals_changelog: TopicSpec

    @classmethod
    def of(cls, names: TopicNames, partitions: int, replication_factor: int = 1, min_insync_replicas: int = 1) -> Topics:
        """`partitions`: of every topic the detector creates, and exactly of the co-partitioned ones;
        `replication_factor` and `min_insync_replicas`: of every topic it creates."""
        n, durable = partitions, {MIN_INSYNC: str(min_insync_replicas)}

        def spec(name: str, role: Role, config: Mapping[str, str] | None = None, table: str | None = None) -> TopicSpec:
            return TopicSpec(name, role, n, {**(config or {}), **durable}, table, replication_factor)

        return cls(
            hits=spec(names.hits, Role.INPUT),
            capi=spec(names.capi, Role.INPUT),
            billing=spec(names.billing, Role.INPUT),
            usage=spec(names.usage, Role.OUTPUT, COMPACTED),
            eligibility=spec(names.eligibility, Role.OUTPUT, COMPACTED),
            dead_letter=spec(names.dead_letter, Role.DEAD_LETTER, DEAD_LETTER_CONFIG),
            usage_evidence=spec(names.usage_evidence, Role.INTERNAL),
            account_events=spec(names.account_events, Role.INTERNAL),
            signal_claims=spec(names.signal_claims, Role.INTERNAL),
            usage_changelog=spec(names.usage_changelog, Role.CHANGELOG, CHANGELOG_CONFIG, USAGE_TABLE),
            accounts_changelog=spec(names.accounts_changelog, Role.CHANGELOG, CHANGELOG_CONFIG, ACCOUNTS_TABLE),
            signals_changelog=spec(names.signals_changelog, Role.CHANGELOG, CHANGELOG_CONFIG, SIGNALS_TABLE),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls.of(
            TopicNames.from_settings(settings), settings.partitions, settings.replication_factor, settings.min_insync_replicas
        )

    def __iter__(self) -> Iterator[TopicSpec]:
        return (getattr(self, f.name) for f in fields(self))

    @property
    def names(self) -> TopicNames:
        return TopicNames(**{f.name: getattr(self, f.name).name for f in fields(self)})


@dataclass(frozen=True)
class Observed:
    """An existing topic, as the broker describes it."""

    partitions: int
    config: Mapping[str, str]
    replication_factor: int = 1


@dataclass(frozen=True)
class Mismatch:
    topic: str
    difference: str
    remedy: str

    def __str__(self) -> str:
        return f"topic {self.topic}: {self.difference}; {self.remedy}"


def mismatches(specs: Iterable[TopicSpec], observed: Mapping[str, Observed]) -> list[Mismatch]:
    """What keeps existing topics from working as their specs say. Absent topics are not judged
    (the worker creates them); inputs pass whatever they are: they belong to their producers."""
    found = []
    for spec in specs:
        seen = observed.get(spec.name)
        if seen is None:
            continue
        policy = seen.config.get("cleanup.policy")
        if spec.compacted and policy is None:
            found.append(
                Mismatch(
                    spec.name,
                    "its cleanup.policy could not be read",
                    "grant the worker's user DescribeConfigs on it, so that it can check the topic is compacted",
                )
            )
        elif spec.compacted and policy != "compact":
            found.append(
                Mismatch(
                    spec.name,
                    f"cleanup.policy is {policy}, not compact",
                    f"the {spec.role} topic must keep every key's latest record for good: kafka-configs.sh "
                    f"--alter --entity-type topics --entity-name {spec.name} --add-config cleanup.policy=compact",
                )
            )
        if spec.copartitioned and seen.partitions != spec.partitions:
            found.append(
                Mismatch(
                    spec.name,
                    f"{seen.partitions} partitions, not {spec.partitions} (USAGE_DETECTOR_PARTITIONS)",
                    f"{spec.role} topics are partitioned exactly like the tables, and adding partitions moves keys: "
                    f"set USAGE_DETECTOR_PARTITIONS={seen.partitions} if the app's other internal topics and changelogs "
                    "have as many, or else delete them all (the app's state) so that the worker recreates them",
                )
            )
        if spec.role is not Role.INPUT:
            found += under_replicated(spec, seen)
    return found


def under_replicated(spec: TopicSpec, seen: Observed) -> list[Mismatch]:
    """Fewer replicas, or fewer required in sync, than the settings ask of the detector's topics:
    a broker's loss could then lose acknowledged records, or stop no write that it should."""
    found = []
    if seen.replication_factor < spec.replication_factor:
        found.append(
            Mismatch(
                spec.name,
                f"under-replicated: {seen.replication_factor} replicas, not {spec.replication_factor} "
                "(USAGE_DETECTOR_REPLICATION_FACTOR)",
                "add replicas with kafka-reassign-partitions.sh (a plan listing "
                f"{spec.replication_factor} brokers for each partition), or lower USAGE_DETECTOR_REPLICATION_FACTOR",
            )
        )
    in_sync = seen.config.get(MIN_INSYNC)
    if in_sync is None and spec.min_insync_replicas > 1:  # any value passes for 1
        found.append(
            Mismatch(
                spec.name,
                f"its {MIN_INSYNC} could not be read",
                "grant the worker's user DescribeConfigs on it, so that it can check how many replicas a write needs",
            )
        )
    elif in_sync is not None and int(in_sync) < spec.min_insync_replicas:
        found.append(
            Mismatch(
                spec.name,
                f"under-replicated: {MIN_INSYNC} is {in_sync}, not {spec.min_insync_replicas} "
                "(USAGE_DETECTOR_MIN_INSYNC_REPLICAS)",
                f"kafka-configs.sh --alter --entity-type topics --entity-name {spec.name} "
                f"--add-config {MIN_INSYNC}={spec.min_insync_replicas}",
            )
        )
    return found


def describe(admin: KafkaAdminClient, names: list[str]) -> dict[str, Observed]:
    """The existing ones of `names`: partition count, replicas and the configs a spec may require."""
    described = {t["name"]: t["partitions"] for t in admin.describe_topics(names) if not t["error_code"]}
    if not described:
        return {}
    wanted: dict[str, None] = {"cleanup.policy": None, MIN_INSYNC: None}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(wanted)) for name in described]
    configs = admin.describe_configs(resources, config_filter="all").get("topic", {})
    return {
        name: Observed(
            len(partitions),
            {key: entry["value"] for key, entry in configs.get(name, {}).items()},
            min((len(p["replica_nodes"]) for p in partitions), default=0),
        )
        for name, partitions in described.items()
    }


def ensure_topics(settings: Settings, bootstrap_servers: str, timeout_s: float = 60.0) -> list[str]:
    """Create the missing topics and wait until the broker serves all of them. Returns the names created.

    Existing topics are left as they are, but checked first: one that would break the detector
    (see `mismatches`) raises ConfigurationError naming it, and nothing is created. Retries while
    the broker is unreachable, so a worker started before its broker waits for it. Refused
    credentials or a failed TLS handshake raise ConfigurationError at once.
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
    topics = list(Topics.from_settings(settings))
    try:
        # Only the detector's own names: a cluster's full metadata (thousands of topics) costs seconds to decode.
        existing = {topic["name"] for topic in admin.describe_topics([spec.name for spec in topics]) if not topic["error_code"]}
        # Checked before anything is created: a refused start leaves the broker as it was.
        checked = [spec.name for spec in topics if spec.name in existing and spec.role is not Role.INPUT]
        if problems := mismatches(topics, describe(admin, checked)):
            raise ConfigurationError(
                f"existing topics do not fit the detector (app id {settings.app_id}):\n  "
                + "\n  ".join(str(problem) for problem in problems)
            )
        created = []
        for spec in topics:
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.config))]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        wait_until_served(admin, [spec.name for spec in topics], deadline)
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
    delay = 0.1
    reported: list[str] = []
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
