"""Every compression codec Kafka defines, from librdkafka (kcat) and both Python clients, on every input topic.

Records carry a compressible `note` (an unknown field, ignored): clients send a batch uncompressed
when compressing would not make it smaller.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import Detector
from tests.support.kafka import Producer, TopicTail
from tests.support.records import capi, hit, trial

pytestmark = pytest.mark.integration

CODECS = ["gzip", "snappy", "lz4", "zstd"]
PRODUCERS = ["kcat", "kafka-python", "aiokafka"]
NOTE = "compressible " * 200
AT = "2026-03-01T10:00:00Z"
Sent = list[tuple[str, dict[str, Any]]]  # (topic, value)


def records_for(detector: Detector, producer: str, codec: str) -> Sent:
    """A hit, a Conversion API event and a trial, each for an account of its own."""
    tag = f"{producer}-{codec}-{uuid.uuid4().hex[:6]}"
    topics = detector.topics
    return [
        (topics.hits, hit(f"hit-{tag}", AT, note=NOTE)),
        (topics.capi, capi(f"capi-{tag}", AT, note=NOTE)),
        (topics.billing, trial(f"trial-{tag}", AT) | {"note": NOTE}),
    ]


def with_kcat(servers: str, codec: str, sent: Sent) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat (librdkafka's command-line client) is missing: scripts/setup installs it (apt-get install kcat)"
    for topic, value in sent:
        line = value["account_id"].encode() + b"\t" + orjson.dumps(value) + b"\n"
        subprocess.run([kcat, "-P", "-b", servers, "-t", topic, "-z", codec, "-K", "\t"], input=line, check=True, timeout=60)


def with_kafka_python(servers: str, codec: str, sent: Sent) -> None:
    producer = Producer(servers, {"compression_type": codec})
    for topic, value in sent:
        producer.send(topic, value, key=value["account_id"])
    producer.flush()
    producer.close()


def with_aiokafka(servers: str, codec: str, sent: Sent) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers, compression_type=codec, acks="all")
        await producer.start()
        try:
            for topic, value in sent:
                await producer.send_and_wait(topic, orjson.dumps(value), key=value["account_id"].encode())
        finally:
            await producer.stop()

    asyncio.run(produce())


SEND = {"kcat": with_kcat, "kafka-python": with_kafka_python, "aiokafka": with_aiokafka}


def test_every_codec_from_every_client_is_processed_and_readable_by_the_tools(detector: Detector) -> None:
    sent: Sent = []
    for producer in PRODUCERS:
        for codec in CODECS:
            batch = records_for(detector, producer, codec)
            SEND[producer](detector.bootstrap_servers, codec, batch)
            sent += batch

    topics, tail = detector.topics, detector.tail
    for topic, value in sent:
        output = topics.eligibility if topic == topics.billing else topics.usage
        account = value["account_id"]
        tail.wait_for(f"{output} of {account}", lambda output=output, account=account: tail.records(output, account))
    assert not tail.records(topics.dead_letter)

    # The tools read the inputs with kafka-python (replay, explain, the reader): every record decompresses.
    names = [topics.hits, topics.capi, topics.billing]
    inputs = TopicTail(detector.bootstrap_servers, names)
    try:
        expected = {value["account_id"] for _, value in sent}
        inputs.wait_for(
            "kafka-python to read every input", lambda: expected <= {r.value["account_id"] for t in names for r in inputs.records(t)}
        )
    finally:
        inputs.close()
