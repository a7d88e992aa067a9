"""The topic registry: what it declares, how existing topics are judged against it, and
waiting for the broker to serve new topics before a worker joins its group."""

from __future__ import annotations

import asyncio
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import faust
import pytest

from streams.app import create_app, create_usage_app
from streams.settings import Settings
from streams.topics import (
    SETTING_OF,
    Mismatch,
    Observed,
    Role,
    TopicNames,
    Topics,
    consumer_groups,
    mismatches,
    under_replicated,
    wait_until_served,
)
from tools.workerpool import TopicSet

SETTINGS = Settings(app_id="app", partitions=4, store="memory")
REGISTRY = Topics.from_settings(SETTINGS)
CHANGELOGS = {"app-usage-changelog", "app-accounts-changelog", "app-signals-changelog"}
COMPACTED_TOPICS = {"usage.state", "refund.eligibility", *CHANGELOGS}
COPARTITIONED_TOPICS = {"app-usage-evidence", "app-account-events", "app-signal-claims", *CHANGELOGS}


def as_specified() -> dict[str, Observed]:
    """Every topic of the registry, existing exactly as its spec says."""
    return {spec.name: Observed(spec.partitions, dict(spec.config), spec.replication_factor) for spec in REGISTRY}


def test_the_registry_declares_every_topic_the_detector_touches() -> None:
    assert {spec.name: spec.role for spec in REGISTRY} == {
        "tracking.hits": Role.INPUT,
        "capi.events": Role.INPUT,
        "billing.events": Role.INPUT,
        "usage.state": Role.OUTPUT,
        "refund.eligibility": Role.OUTPUT,
        "usage.dead-letter": Role.DEAD_LETTER,
        "app-usage-evidence": Role.INTERNAL,
        "app-account-events": Role.INTERNAL,
        "app-signal-claims": Role.INTERNAL,
        "app-usage-changelog": Role.CHANGELOG,
        "app-accounts-changelog": Role.CHANGELOG,
        "app-signals-changelog": Role.CHANGELOG,
    }
    assert {spec.name for spec in REGISTRY if spec.compacted} == COMPACTED_TOPICS
    assert {spec.name for spec in REGISTRY if spec.copartitioned} == COPARTITIONED_TOPICS
    assert all(spec.partitions == SETTINGS.partitions for spec in REGISTRY)
    assert REGISTRY.names == TopicNames.from_settings(SETTINGS)


def test_topics_as_specified_pass() -> None:
    assert mismatches(REGISTRY, as_specified()) == []


def test_absent_topics_are_not_judged() -> None:
    assert mismatches(REGISTRY, {}) == []


@pytest.mark.parametrize("policy", ["delete", "compact,delete"])
def test_a_compacted_topic_that_is_not_compacted_is_named(policy: str) -> None:
    for name in COMPACTED_TOPICS:
        observed = {**as_specified(), name: Observed(4, {"cleanup.policy": policy})}
        [problem] = mismatches(REGISTRY, observed)
        assert problem.topic == name
        assert problem.difference == f"cleanup.policy is {policy}, not compact"
        assert f"--entity-name {name} --add-config cleanup.policy=compact" in problem.remedy


def test_a_compaction_that_cannot_be_read_is_not_taken_for_granted() -> None:
    [problem] = mismatches(REGISTRY, {**as_specified(), "usage.state": Observed(4, {})})
    assert (problem.topic, problem.difference) == ("usage.state", "its cleanup.policy could not be read")
    assert "DescribeConfigs" in problem.remedy


def test_a_copartitioned_topic_with_another_partition_count_is_named() -> None:
    for name in COPARTITIONED_TOPICS:
        spec = next(spec for spec in REGISTRY if spec.name == name)
        observed = {**as_specified(), name: Observed(3, dict(spec.config))}
        [problem] = mismatches(REGISTRY, observed)
        assert problem.topic == name
        assert problem.difference == "3 partitions, not 4 (USAGE_DETECTOR_PARTITIONS)"
        assert "USAGE_DETECTOR_PARTITIONS=3" in problem.remedy


def test_both_differences_of_one_changelog_are_named() -> None:
    observed = {**as_specified(), "app-accounts-changelog": Observed(8, {"cleanup.policy": "delete"})}
    problems = mismatches(REGISTRY, observed)
    assert [(p.topic, p.difference) for p in problems] == [
        ("app-accounts-changelog", "cleanup.policy is delete, not compact"),
        ("app-accounts-changelog", "8 partitions, not 4 (USAGE_DETECTOR_PARTITIONS)"),
    ]


def test_inputs_belong_to_their_producers_and_are_never_checked() -> None:
    anything = Observed(1, {"cleanup.policy": "delete", "retention.ms": "1"})
    assert mismatches(REGISTRY, {**as_specified(), **dict.fromkeys(REGISTRY.names.inputs, anything)}) == []


def test_outputs_and_dead_letters_may_have_any_partition_count() -> None:
    observed = as_specified()
    for spec in (REGISTRY.usage, REGISTRY.eligibility, REGISTRY.dead_letter):
        observed[spec.name] = Observed(1, dict(spec.config))
    assert mismatches(REGISTRY, observed) == []


def test_a_mismatch_reads_as_topic_difference_and_remedy() -> None:
    assert str(Mismatch("usage.state", "cleanup.policy is delete, not compact", "set it")) == (
        "topic usage.state: cleanup.policy is delete, not compact; set it"
    )


def test_table_options_give_faust_the_registry_changelog() -> None:
    app = faust.App(SETTINGS.app_id, broker="kafka://127.0.0.1:1", autodiscover=False)
    for spec in (REGISTRY.accounts_changelog, REGISTRY.signals_changelog):
        table = app.Table(**spec.table_options(), key_type=bytes, value_type=bytes)
        assert table.changelog_topic_name == spec.name
        assert table.changelog_topic.partitions == spec.partitions
        assert table.changelog_topic.compacting and dict(table.changelog_topic.config) == dict(spec.config)
    with pytest.raises(ValueError, match="no table's changelog"):
        REGISTRY.usage.table_options()


def test_topic_options_give_faust_the_registry_topic() -> None:
    app = faust.App(SETTINGS.app_id, broker="kafka://127.0.0.1:1", autodiscover=False)
    spec = REGISTRY.account_events
    topic = app.topic(spec.name, **spec.topic_options())
    assert (topic.get_topic_name(), topic.partitions, dict(topic.config)) == (spec.name, spec.partitions, spec.config)


def test_the_topology_declares_its_tables_and_internal_topics_as_the_registry_does(tmp_path: Path) -> None:
    """Faust creates what the topology declares when it is absent: it must be what the worker checks."""
    apps = (create_app(SETTINGS, "127.0.0.1:1").app, create_usage_app(SETTINGS, "127.0.0.1:1", tmp_path / "usage.sock").app)
    changelogs = {table.changelog_topic_name: table.changelog_topic for app in apps for table in app.tables.values()}
    specs = (REGISTRY.usage_changelog, REGISTRY.accounts_changelog, REGISTRY.signals_changelog)
    assert set(changelogs) == {spec.name for spec in specs}
    for spec in specs:
        assert changelogs[spec.name].partitions == spec.partitions and changelogs[spec.name].compacting
    consumed = {name: agent.channel for app in apps for agent in app.agents.values() for name in agent.channel.topics}
    for spec in (REGISTRY.usage_evidence, REGISTRY.account_events, REGISTRY.signal_claims):
        assert consumed[spec.name].partitions == spec.partitions


def test_each_topic_the_workers_read_is_committed_by_the_group_that_reads_it(tmp_path: Path) -> None:
    """The tools' lag (`LagProbe.app_lag`) sums the groups: a topic in the wrong one would never catch up."""
    detector = create_app(SETTINGS, "127.0.0.1:1")
    stage = create_usage_app(SETTINGS, "127.0.0.1:1", tmp_path / "usage.sock")
    reads = {
        app.conf.id: {name for agent in app.agents.values() for name in agent.channel.topics} for app in (detector.app, stage.app)
    }
    firehose = stage.topology.firehose.config
    groups = consumer_groups("app", REGISTRY.names)
    assert set(groups) == {"app", "app-firehose", "app-usage"} and set(reads) == {"app", "app-usage"}
    assert firehose.group_id == "app-firehose" and groups["app-firehose"] == firehose.topics
    assert set(groups["app"]) == reads["app"] and set(groups["app-usage"]) == reads["app-usage"]
    committed = [topic for topics in groups.values() for topic in topics]
    assert sorted(committed) == sorted({*REGISTRY.names.inputs, REGISTRY.names.usage_evidence, *REGISTRY.names.internal})


def test_a_topic_set_names_every_topic_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    topics = TopicSet.named("t1", app_id="test-t1")
    assert topics.hits == "t1.tracking.hits" and topics.usage == "t1.usage.state"
    assert topics.internal == ("test-t1-account-events", "test-t1-signal-claims")
    assert all(topics.owns(spec.name) for spec in Topics.of(topics, 4))
    # A worker given the set's environment names the very same topics.
    for name, value in topics.env().items():
        monkeypatch.setenv(name, value)
    assert TopicNames.from_settings(Settings()) == TopicNames(**{f.name: getattr(topics, f.name) for f in fields(TopicNames)})


def test_every_setting_naming_a_topic_is_in_the_registry() -> None:
    assert set(SETTING_OF.values()) == {name for name in Settings.model_fields if name.startswith("topic_")}


REPLICATED = Settings(app_id="app", partitions=4, store="memory", replication_factor=3, min_insync_replicas=2)
REPLICATED_REGISTRY = Topics.from_settings(REPLICATED)
OWN_TOPICS = [spec for spec in REPLICATED_REGISTRY if spec.role is not Role.INPUT]


def test_every_topic_is_created_with_the_configured_replication_and_min_insync_replicas() -> None:
    assert {(spec.replication_factor, spec.config["min.insync.replicas"]) for spec in REPLICATED_REGISTRY} == {(3, "2")}
    assert {(spec.replication_factor, spec.config["min.insync.replicas"]) for spec in REGISTRY} == {(1, "1")}
    # What Faust declares (and creates, were the worker's topics missing) carries the same.
    account_events = REPLICATED_REGISTRY.account_events
    assert account_events.topic_options()["replicas"] == 3
    assert account_events.topic_options()["config"]["min.insync.replicas"] == "2"
    assert REPLICATED_REGISTRY.accounts_changelog.table_options()["extra_topic_configs"] == {
        "cleanup.policy": "compact", "min.insync.replicas": "2"
    }
    detector = create_app(REPLICATED, "127.0.0.1:1")
    stage = create_usage_app(REPLICATED, "127.0.0.1:1", Path("usage.sock"))
    for app in (detector.app, stage.app):
        assert app.conf.topic_replication_factor == 3
        for table in app.tables.values():
            assert table.changelog_topic.config["min.insync.replicas"] == "2"
            assert table.changelog_topic.replicas == 3


def replicated_as_specified(**changes: Observed) -> dict[str, Observed]:
    observed = {spec.name: Observed(spec.partitions, dict(spec.config), spec.replication_factor) for spec in REPLICATED_REGISTRY}
    return {**observed, **changes}


def test_replicated_topics_as_specified_pass_and_more_replicas_pass_too() -> None:
    assert mismatches(REPLICATED_REGISTRY, replicated_as_specified()) == []
    more = {spec.name: Observed(spec.partitions, {**spec.config, "min.insync.replicas": "3"}, 5) for spec in OWN_TOPICS}
    assert mismatches(REPLICATED_REGISTRY, replicated_as_specified(**more)) == []


def test_a_topic_with_fewer_replicas_than_the_setting_is_named_under_replicated() -> None:
    for spec in OWN_TOPICS:
        [problem] = mismatches(REPLICATED_REGISTRY, replicated_as_specified(**{spec.name: Observed(4, dict(spec.config), 1)}))
        assert problem.topic == spec.name
        assert problem.difference == "under-replicated: 1 replicas, not 3 (USAGE_DETECTOR_REPLICATION_FACTOR)"
        assert "kafka-reassign-partitions.sh" in problem.remedy


def test_a_topic_needing_fewer_replicas_in_sync_than_the_setting_is_named_under_replicated() -> None:
    for spec in OWN_TOPICS:
        config = {**spec.config, "min.insync.replicas": "1"}
        [problem] = mismatches(REPLICATED_REGISTRY, replicated_as_specified(**{spec.name: Observed(4, config, 3)}))
        assert (problem.topic, problem.difference) == (
            spec.name, "under-replicated: min.insync.replicas is 1, not 2 (USAGE_DETECTOR_MIN_INSYNC_REPLICAS)"
        )
        assert f"--entity-name {spec.name} --add-config min.insync.replicas=2" in problem.remedy


def test_a_min_insync_replicas_that_cannot_be_read_is_named_only_when_it_matters() -> None:
    spec = REPLICATED_REGISTRY.dead_letter
    unread = Observed(4, {"cleanup.policy": "delete"}, 3)
    [problem] = under_replicated(spec, unread)
    assert problem.difference == "its min.insync.replicas could not be read" and "DescribeConfigs" in problem.remedy
    assert under_replicated(REGISTRY.dead_letter, unread) == []  # with 1 required, any value passes


def test_inputs_are_never_judged_under_replicated() -> None:
    thin = Observed(4, {"min.insync.replicas": "1"}, 1)
    inputs = dict.fromkeys(REPLICATED_REGISTRY.names.inputs, thin)
    assert mismatches(REPLICATED_REGISTRY, replicated_as_specified(**inputs)) == []


def test_settings_refuse_more_replicas_in_sync_than_replicas() -> None:
    with pytest.raises(ValueError, match="min_insync_replicas 3 exceeds replication_factor 2"):
        Settings(replication_factor=2, min_insync_replicas=3)


def test_the_workers_producer_waits_for_every_in_sync_replica_and_is_idempotent() -> None:
    async def made() -> tuple[object, int]:
        producer = create_app(SETTINGS, "127.0.0.1:1").app.producer._new_producer()
        return producer._txn_manager, producer._sender._acks  # the idempotence state aiokafka keeps

    idempotence, acks = asyncio.run(made())
    assert idempotence is not None and acks == -1


def described(name: str, error_code: int = 0, leaders: tuple[int, ...] = (1, 1)) -> dict[str, Any]:
    return {
        "name": name,
        "error_code": error_code,
        "partitions": [{"partition_index": i, "leader_id": leader} for i, leader in enumerate(leaders)],
    }


class BrokerCatchingUp:
    """Answers describe_topics from a script of answers, one a call, then keeps the last."""

    def __init__(self, *answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_returns_at_once_when_every_topic_is_served() -> None:
    broker = BrokerCatchingUp([described("a"), described("b")])
    wait_until_served(broker, ["a", "b"], deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert broker.calls == 1


def test_waits_while_a_topic_is_unknown_or_a_partition_has_no_leader() -> None:
    broker = BrokerCatchingUp(
        [described("a", error_code=3, leaders=()), described("b")],  # unknown topic
        [described("a", leaders=(1, -1)), described("b")],  # partition 1 without a leader yet
        [described("a"), described("b")],
    )
    wait_until_served(broker, ["a", "b"], deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert broker.calls == 3


def test_names_the_topics_still_unserved_at_the_deadline() -> None:
    broker = BrokerCatchingUp([described("a"), described("b", error_code=3, leaders=())])
    with pytest.raises(ConnectionError, match=r"does not serve b;"):
        wait_until_served(broker, ["a", "b"], deadline=time.monotonic() + 0.3)  # type: ignore[arg-type]
