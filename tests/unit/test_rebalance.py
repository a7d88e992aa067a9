"""The repaired rebalance hand-over (streams.rebalance), and the Faust code it stands in for."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams import eager_delivery, rebalance
from streams.rebalance import (
    SWEEP_S,
    CommittedPositionConsumer,
    PacedWaitEmpty,
    PositionTrackingThread,
    ResumeOnceFlowControl,
    SeekFirstRecovery,
)
from tests.support.upstream import Pins, assert_unchanged

# What streams.rebalance was written against. A new Faust, mode or aiokafka that changes one of
# these fails here: read the new code, check each repair still fits, then update the digest.
UPSTREAM: Pins = {
    "Recovery.on_recovery_completed": (Recovery.on_recovery_completed, "6ef567acf072"),
    "FaustConsumer.perform_seek": (FaustConsumer.perform_seek, "0e8c130ff4b0"),
    "FaustConsumer._drain_messages": (FaustConsumer._drain_messages, "44a2500309e8"),
    "FaustConsumer.getmany": (FaustConsumer.getmany, "4b168d84882a"),
    "FlowControlEvent.resume": (FlowControlEvent.resume, "4dcdc1253fd0"),
    "AIOKafkaConsumer.seek_to_committed": (AIOKafkaConsumer.seek_to_committed, "f6cd85c8b70a"),
    "AIOKafkaConsumerThread.verify_event_path": (AIOKafkaConsumerThread.verify_event_path, "b983e7735f64"),
    "FaustConsumer.wait_empty": (FaustConsumer.wait_empty, "e4662fe24f09"),
}



@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_the_upstream_code_the_repairs_replace_is_unchanged(name: str) -> None:
    assert_unchanged(UPSTREAM, name, "streams/rebalance.py")


def test_a_resume_while_flowing_keeps_what_the_queues_hold() -> None:
    flow = ResumeOnceFlowControl()  # created suspended, as Faust's is
    queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    queue.put_nowait("delivered in this generation")
    flow.resume()
    assert queue.qsize() == 1


def test_a_resume_after_a_suspension_clears_the_queues() -> None:
    flow = ResumeOnceFlowControl()
    queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    queue.put_nowait("delivered before the rebalance")
    flow.suspend()
    flow.resume()
    assert queue.qsize() == 0 and flow.is_active()


class SeekRecorder:
    """Stands in for aiokafka and Faust's consumer thread: records what was seeked where."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.to_beginning: list[TP] = []

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed

    async def seek_to_beginning(self, *partitions: TP) -> None:
        self.to_beginning.extend(partitions)


def seeking_consumer(committed: dict[TP, int | None]) -> tuple[CommittedPositionConsumer, SeekRecorder]:
    app = faust.App("test-rebalance", broker="kafka://127.0.0.1:1", autodiscover=False)
    eager_delivery.install(app)
    consumer = app.consumer  # the worker's consumer class, built, never started
    assert isinstance(consumer, CommittedPositionConsumer)
    recorder = SeekRecorder(committed)
    consumer.seek_to_committed = recorder.seek_to_committed  # type: ignore[method-assign]
    consumer._thread = SimpleNamespace(seek_to_beginning=recorder.seek_to_beginning)  # type: ignore[assignment]
    consumer.assignment = lambda: set(committed)  # type: ignore[method-assign]
    return consumer, recorder


def test_a_partition_with_nothing_committed_is_read_again_from_the_beginning() -> None:
    fresh, zero, used = TP("billing", 0), TP("billing", 1), TP("billing", 2)
    changelog = TP("test-rebalance-accounts-changelog", 0)  # positioned by recovery, never committed
    consumer, recorder = seeking_consumer({fresh: None, zero: 0, used: 40, changelog: None})
    consumer.app.tables._changelogs[changelog.topic] = object()  # type: ignore[assignment]
    asyncio.run(consumer.perform_seek())
    assert sorted(recorder.to_beginning) == [fresh, zero]
    assert consumer._read_offset[fresh] is None and consumer._read_offset[used] == 40
    assert consumer._committed_offset[used] == 40


def test_a_seek_forgets_acks_and_gaps_from_before_it() -> None:
    tp = TP("billing", 0)
    consumer, _ = seeking_consumer({tp: None})
    consumer._acked[tp].append(300)  # a stale record's ack, from the previous generation
    consumer._acked_index[tp].add(300)
    consumer._gap[tp].addi(10, 20)
    asyncio.run(consumer.perform_seek())
    assert not consumer._acked[tp] and not consumer._acked_index[tp] and not consumer._gap[tp]
    # Without the repair Faust would commit 301 at the first commit, past offsets 0..299.
    assert consumer._new_offset(tp) is None


def test_recovery_seeks_the_stream_partitions_before_it_resumes_them() -> None:
    calls: list[str] = []
    stream_tp, changelog_tp = TP("billing", 0), TP("app-accounts-changelog", 0)

    async def perform_seek() -> None:
        calls.append("seek")

    async def wait(coro: Any, timeout: float) -> None:
        await coro

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    consumer = SimpleNamespace(
        assignment=lambda: {stream_tp, changelog_tp},
        perform_seek=perform_seek,
        resume_flow=lambda: calls.append("consumer flow"),
        resume_partitions=lambda tps: calls.append(f"resume {sorted(tp.topic for tp in tps)}"),
    )
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=7,
        on_rebalance_complete=SimpleNamespace(send=nothing),
        flow_control=SimpleNamespace(resume=lambda: calls.append("stream flow")),
        conf=SimpleNamespace(broker_request_timeout=1.0),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: calls.append("ready"),
    )
    recovery = SimpleNamespace(
        app=app,
        log=SimpleNamespace(info=lambda *a: None, warning=lambda *a: None),
        tables=SimpleNamespace(values=list, on_actives_ready=lambda: None, on_standbys_ready=lambda: None),
        actives_for_table={},
        standbys_for_table={},
        _set_recovery_ended=lambda: None,
        _wait=wait,
        completed=SimpleNamespace(set=lambda: calls.append("completed")),
        _is_changelog_tp=lambda tp: tp is changelog_tp,
    )
    asyncio.run(SeekFirstRecovery.on_recovery_completed(recovery, generation_id=7))  # type: ignore[arg-type]
    assert calls == ["seek", "completed", "stream flow", "consumer flow", "resume ['billing']", "ready"]


def test_install_gives_the_app_the_repaired_parts() -> None:
    app = faust.App("test-rebalance-install", broker="kafka://127.0.0.1:1", autodiscover=False)
    rebalance.install(app)
    assert isinstance(app.flow_control, ResumeOnceFlowControl)
    assert isinstance(app.tables.recovery, SeekFirstRecovery)


def thread_with_a_partition_awaiting_its_reset(cls: type, tp: TP) -> Any:
    """A consumer thread whose partition's end is known and whose position is not (after a seek
    to the beginning, until the fetcher resolves it). Built in a running loop, as aiokafka wants."""
    subscriptions = SubscriptionState()
    subscriptions.assign_from_user({TopicPartition(tp.topic, tp.partition)})
    consumer = SimpleNamespace(_subscription=subscriptions, _fetcher=SimpleNamespace(_subscriptions=subscriptions))
    state = subscriptions.subscription.assignment.state_value(TopicPartition(tp.topic, tp.partition))
    state.highwater = 10
    state.await_reset(OffsetResetStrategy.EARLIEST)
    thread = cls.__new__(cls)
    app = SimpleNamespace(monitor=SimpleNamespace(stream_inbound_time={}), topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    thread.__dict__.update(
        consumer=SimpleNamespace(app=app), time_started=0.0, tp_stream_timeout_secs=300.0,
        _verify_aiokafka_event_path=lambda now, tp: False, _ensure_consumer=lambda: consumer,
    )
    return thread


def test_the_livelock_check_passes_over_a_partition_awaiting_its_reset() -> None:
    tp = TP("inputs", 0)

    async def check(cls: type) -> None:
        cls.verify_event_path(thread_with_a_partition_awaiting_its_reset(cls, tp), 1.0, tp)

    with pytest.raises(AssertionError):  # Faust's own: the crash seen in CI
        asyncio.run(check(AIOKafkaConsumerThread))
    asyncio.run(check(PositionTrackingThread))


class ReadRecord:
    """A record read, not yet processed: what the wait for acks looks at (and Faust's logs)."""

    acked = False
    refcount = 1


def waiting_consumer() -> tuple[FaustConsumer, list[ReadRecord], list[str]]:
    """The worker's consumer (never started) with 40 records read, and what it commits."""
    app = faust.App("test-rebalance-wait", broker="kafka://127.0.0.1:1", autodiscover=False)
    eager_delivery.install(app)
    consumer = app.consumer
    assert isinstance(consumer, PacedWaitEmpty)
    calls: list[str] = []

    async def commit(*args: Any, **kwargs: Any) -> bool:
        calls.append("commit")
        return True

    consumer.commit = commit  # type: ignore[method-assign]
    records = [ReadRecord() for _ in range(40)]
    for record in records:
        consumer._unacked_messages.add(record)  # type: ignore[arg-type]
    return consumer, records, calls


async def process(consumer: FaustConsumer, records: list[ReadRecord]) -> None:
    """Acks the records one by one, a few ms apart, as an agent does (Consumer.ack's bookkeeping)."""
    for record in records:
        await asyncio.sleep(0.002)
        record.acked = True
        consumer._unacked_messages.discard(record)  # type: ignore[arg-type]
        if consumer._waiting_for_ack is not None and not consumer._waiting_for_ack.done():
            consumer._waiting_for_ack.set_result(None)


@pytest.mark.parametrize("wait", [FaustConsumer.wait_empty, PacedWaitEmpty.wait_empty], ids=["faust", "paced"])
def test_the_wait_for_acks_collects_and_commits_once_a_second_not_at_every_ack(
    wait: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    collections: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(1) or 0)  # some 70 ms each in a worker
    consumer, records, calls = waiting_consumer()

    async def revoke() -> None:
        consumer.loop = asyncio.get_running_loop()  # Faust's wait makes its futures on it
        await asyncio.gather(wait(consumer), process(consumer, records))

    started = time.monotonic()
    asyncio.run(revoke())
    elapsed = time.monotonic() - started
    assert not consumer._unacked_messages
    if wait is FaustConsumer.wait_empty:  # what the repair stands in for: a collection and a commit per ack
        assert len(collections) >= 20 and len(calls) >= 20
    else:  # a sweep at the start and one a second after it, then the final commit
        assert 1 <= len(collections) <= 1 + elapsed / SWEEP_S, (len(collections), elapsed)
        assert len(calls) == len(collections) + 1


def test_a_record_dropped_without_an_ack_is_forgotten_at_the_sweep() -> None:
    consumer, records, _ = waiting_consumer()
    cycle: list[Any] = [records.pop()]
    cycle.append(cycle)  # only a garbage collection frees it
    del cycle

    async def revoke() -> None:
        await asyncio.gather(PacedWaitEmpty.wait_empty(consumer), process(consumer, records))

    gc.disable()  # no automatic collection: only the wait's own sweep can free the record
    try:
        asyncio.run(asyncio.wait_for(revoke(), timeout=5))
    finally:
        gc.enable()
    assert not consumer._unacked_messages


def test_a_long_wait_says_how_many_records_remain_and_where_the_agents_stand(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rebalance, "SWEEP_S", 0.001)  # ten sweeps within the test, not ten seconds
    monkeypatch.setattr(rebalance, "ACK_CHECK_S", 0.001)
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    consumer, records, _ = waiting_consumer()

    async def revoke() -> None:
        await asyncio.gather(PacedWaitEmpty.wait_empty(consumer), process(consumer, records))

    with caplog.at_level("INFO"):
        asyncio.run(revoke())
    assert "records read not processed yet" in caplog.text
    assert "Agent tracebacks" in caplog.text
