"""`usage-detector explain ACCOUNT`: the account's decision in words, read from the detector's own state.

The `accounts` table's changelog holds every account's full state; only the one partition that
holds the account is read, from the beginning.
"""

from __future__ import annotations

import argparse
import sys

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from models.errors import InvalidRecord
from models.internal import ACCOUNT_STATE, decode_internal
from models.state import AccountState
from policy.explain import explain
from streams.kafka_security import KafkaSecurity
from streams.settings import Settings
from streams.topics import TopicNames
from tools.options import add_setting_options, bootstrap_servers, settings_from


def read_account(settings: Settings, servers: str, account_id: str) -> AccountState | None:
    topic = TopicNames.from_settings(settings).accounts_changelog
    security = KafkaSecurity.from_settings(settings).kafka_python_config()
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None, **security)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise LookupError(f"no changelog {topic!r}: is USAGE_DETECTOR_APP_ID right, and has a worker run?")
        key = account_id.encode()
        # Faust's producer partitions like Kafka's Java client: murmur2 of the key bytes.
        tp = TopicPartition(topic, (murmur2(key) & 0x7FFFFFFF) % len(partitions))
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        found: bytes | None = None
        while consumer.position(tp) < end:
            for message in consumer.poll(timeout_ms=500).get(tp, []):
                if message.key == key:
                    found = message.value
        return decode_internal(ACCOUNT_STATE, found, f"stored state of {account_id}") if found else None
    finally:
        consumer.close()


def run_explain(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        account = read_account(settings, bootstrap_servers(settings), args.account_id)
    except (LookupError, InvalidRecord) as exc:
        print(f"usage-detector explain: {exc}", file=sys.stderr)
        return 2
    if account is None:
        print(f"{args.account_id}: unknown to the detector (app id {settings.app_id})")
        return 1
    print("\n".join(explain(account)))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("explain", help="an account's decision in words: rule, usage evidence, charges")
    parser.add_argument("account_id")
    add_setting_options(parser)
    parser.set_defaults(run=run_explain)
