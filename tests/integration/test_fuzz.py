"""Fuzz a running worker: over ten thousand malformed records on every input topic, valid ones
in between. The worker must stay up, dead-letter each bad record with its code (matched by
topic, partition and offset), and process every valid one.

Hypothesis draws the records (tests/support/fuzz_records.py: one defect each, the expected code
from the README's table); each example draws one record per code for one topic, so every code
reaches every topic equally often, and each record is sent several times, under different keys
and to different partitions.
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from models.timestamps import format_timestamp, parse_timestamp
from tests.integration.conftest import INPUT_PARTITIONS, Detector, start_detector
from tests.support.fuzz_records import KINDS, LIMIT, Sample, codes_for, dumps, keys, malformed_with, valid_records

pytestmark = [
    pytest.mark.integration,
    # The Kafka clients' background threads use `random` while hypothesis draws, which it mistakes
    # for a strategy using `random`.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

EXAMPLES = 105  # hypothesis examples per input topic; each draws one malformed record per code
COPIES = 4  # each malformed record is sent this often, with other keys, to other partitions
VALID_PER_KIND = 2  # valid records per example, each for an account of its own
KEYS_PER_EXAMPLE = 4


@pytest.fixture(scope="module")
def fuzzed(bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Detector]:
    """A worker of its own whose size limit is small, so that oversized records are cheap."""
    yield from start_detector(
        bootstrap_servers, tmp_path_factory.mktemp("fuzz"), extra_env={"USAGE_DETECTOR_MAX_RECORD_BYTES": str(LIMIT)}
    )


def draw_records() -> tuple[list[Sample], list[tuple[str, dict[str, Any], bytes | None]], list[bytes | None]]:
    """Malformed samples, valid (kind, record, key) and keys: EXAMPLES hypothesis examples per topic."""
    bad: list[Sample] = []
    good: list[tuple[str, dict[str, Any], bytes | None]] = []
    all_keys: list[bytes | None] = []

    def draw_for(kind: str) -> None:
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # a failure is judged on the worker afterwards: nothing to shrink here
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def draw_example(data: st.DataObject) -> None:
            example_keys = data.draw(st.lists(keys, min_size=KEYS_PER_EXAMPLE, max_size=KEYS_PER_EXAMPLE))
            samples = [data.draw(malformed_with(kind, code)) for code in codes_for(kind)]
            valid = [(kind, data.draw(valid_records(kind)), data.draw(keys)) for _ in range(VALID_PER_KIND)]
            # Only whole examples count (hypothesis stops one that draws too much).
            all_keys.extend(example_keys)
            bad.extend(samples)
            good.extend(valid)

        draw_example()

    for kind in KINDS:  # one topic per example: small examples, which hypothesis draws fast
        draw_for(kind)
    return bad, good, all_keys


def as_text(data: bytes | None) -> str | None:
    """The README's dead-letter rendering: text when UTF-8, base64 otherwise (our values are < 64 KiB)."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii")


def test_malformed_records_on_every_input_are_dead_lettered_and_valid_ones_processed(fuzzed: Detector) -> None:
    started = time.monotonic()
    bad, good, all_keys = draw_records()
    drawn_s = time.monotonic() - started
    topics = {"hits": fuzzed.topics.hits, "capi": fuzzed.topics.capi, "billing": fuzzed.topics.billing}

    # (kind, value, key, partition, expected code or None, account of a valid record)
    Send = tuple[str, bytes | None, bytes | None, int | None, str | None, str | None]
    valid_sends: list[Send] = []
    for kind, record, key in good:
        account = f"fz-{uuid.uuid4().hex[:12]}"  # an account of its own, whatever hypothesis drew
        value = dumps({**record, "account_id": account})
        valid_sends.append((kind, value, key, None, "too_large" if len(value) > LIMIT else None, account))
    # Every copy of every malformed record, topics mixed, to every partition in turn, a valid one every `step`.
    random.Random(len(bad)).shuffle(bad)
    step = max(1, COPIES * len(bad) // (len(valid_sends) + 1))
    sends: list[Send] = []
    for copy in range(COPIES):
        for i, sample in enumerate(bad):
            n = copy * len(bad) + i
            key = all_keys[(n * 7 + copy) % len(all_keys)]
            if key is None and sample.value is None:
                key = b""  # Kafka clients refuse a record with neither key nor value
            sends.append((sample.kind, sample.value, key, n % INPUT_PARTITIONS[sample.kind], sample.code, None))
            if n % step == step - 1 and valid_sends:
                sends.append(valid_sends.pop())
    sends.extend(valid_sends)

    started = time.monotonic()
    futures = [
        (fuzzed.producer.send(topics[kind], value, key=key, partition=partition), kind, value, key, code, account)
        for kind, value, key, partition, code, account in sends
    ]
    fuzzed.producer.flush()
    expected: dict[tuple[str, int, int], tuple[str, bytes | None, bytes | None]] = {}
    valid_accounts: list[tuple[str, str]] = []
    received_at = {account: orjson.loads(value)["received_at"] for kind, value, _, _, code, account in sends if code is None and kind != "billing"}
    for future, kind, value, key, code, account in futures:
        meta = future.get(timeout=30)
        if code is not None:
            expected[(meta.topic, meta.partition, meta.offset)] = (code, key, value)
        else:
            assert account is not None
            valid_accounts.append((kind, account))
    sent_s = time.monotonic() - started

    worker = fuzzed.worker

    def dead_letters() -> dict[tuple[str, int, int], dict[str, Any]]:
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        return {(r.value["topic"], r.value["partition"], r.value["offset"]): r.value for r in fuzzed.tail.records(fuzzed.topics.dead_letter)}

    started = time.monotonic()
    try:
        letters = fuzzed.tail.wait_for(
            f"{len(expected)} dead letters", lambda: (found := dead_letters()) and len(found.keys() & expected.keys()) == len(expected) and found, timeout=120
        )
    except AssertionError:
        found = dead_letters()
        missing = sorted(expected.keys() - found.keys())
        raise AssertionError(f"{len(missing)} of {len(expected)} malformed records not dead-lettered, e.g. {[(m, expected[m]) for m in missing[:5]]}") from None
    dead_lettered_s = time.monotonic() - started

    # Exactly the malformed records, each with its code, key and raw value; no valid one.
    assert letters.keys() == expected.keys(), f"dead-lettered valid records: {[letters[k] for k in list(letters.keys() - expected.keys())[:5]]}"
    wrong = [(coords, code, letters[coords]["error"]) for coords, (code, _, _) in expected.items() if letters[coords]["error"]["code"] != code]
    assert not wrong, f"{len(wrong)} records with another code than expected, e.g. {wrong[:5]}"
    for coords, (_, key, value) in expected.items():
        letter = letters[coords]
        assert letter["key"] == as_text(key), coords
        assert letter["raw"] == as_text(value), coords
        assert letter["error"]["message"]

    # Every valid record in between was processed: its account has its records.
    def unprocessed() -> list[tuple[str, str]]:
        dead_letters()  # the worker is still up
        decided = {r.value["account_id"] for r in fuzzed.tail.records(fuzzed.topics.eligibility)}
        used = {r.value["account_id"] for r in fuzzed.tail.records(fuzzed.topics.usage)}
        return [(k, a) for k, a in valid_accounts if a not in decided or (k != "billing" and a not in used)]

    try:
        fuzzed.tail.wait_for("every valid record's output", lambda: not unprocessed(), timeout=60)
    except AssertionError:
        raise AssertionError(f"valid records without output: {unprocessed()[:10]} of {len(valid_accounts)}") from None
    for record in fuzzed.tail.records(fuzzed.topics.usage):  # and processed right: usage began at its received_at
        account = record.value["account_id"]
        assert record.value["usage_started_at"] == format_timestamp(parse_timestamp(received_at[account])), record

    assert worker.process.poll() is None, "the worker exited"
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "crashed" not in log.lower(), worker.log_tail(120)

    by_code = Counter(code for code, _, _ in expected.values())
    by_topic = Counter(topic for topic, _, _ in expected)
    assert set(by_code) == {code for kind in KINDS for code in codes_for(kind)}
    assert len(expected) >= 10_000
    print(
        f"\nfuzz: {len(expected)} malformed + {len(valid_accounts)} valid records "
        f"(drawn {drawn_s:.1f}s, sent {sent_s:.1f}s, all dead-lettered {dead_lettered_s:.1f}s after the send)\n"
        f"  per code: {dict(sorted(by_code.items()))}\n  per topic: {dict(sorted(by_topic.items()))}"
    )
