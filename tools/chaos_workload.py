"""The chaos harness's workloads (dense and sparse, seeded) and what the detector must make of
them: each record as the edge decodes it, and the oracle's records per account."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.errors import InvalidRecord
from models.internal import AccountEvent, UsageObserved
from models.timestamps import format_timestamp
from policy.account import DuplicateWindow
from policy.oracle import run as run_oracle
from policy.usage import evidence_order
from streams.edge import edge_decoders
from streams.settings import Settings
from streams.topics import TopicNames
from tools.outputs import content

DAY = 86_400_000
T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z


@dataclass
class Workload:
    """Raw input records in the order they are produced, and which of them are unusable."""

    records: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)  # (input, key, value)
    bad: set[int] = field(default_factory=set)  # indexes into records

    def add(self, topic: str, account: str | None, value: dict[str, Any] | bytes | None, bad: bool = False) -> None:
        if bad:
            self.bad.add(len(self.records))
        raw = orjson.dumps(value) if isinstance(value, dict) else value
        self.records.append((topic, account.encode() if account else None, raw))


def generate(seed: int, accounts: int, records: int) -> Workload:
    """Trials (some repeated under shared identities), usage, charges, cancellations, refunds,
    duplicates, bad records, and arrival out of order (shuffled within windows)."""
    rng = random.Random(seed)
    billing: list[tuple[int, str, dict[str, Any]]] = []
    users: list[str] = []
    for n in range(accounts):
        account = f"chaos-{seed}-{n:06d}"
        start = T0 + rng.randrange(20 * DAY)
        identity: dict[str, Any] = {
            "email": f"user{n}@example.com",
            "card_fingerprint": f"card-{n}",
            "device_id": f"dev-{n}",
            "signup_ip": f"10.0.{n % 200}.{n % 7}",
        }
        if n and rng.random() < 0.05:  # a repeated trial under a shared card, device, email or site
            other = rng.randrange(n)
            kind = rng.choice(["card_fingerprint", "device_id", "email", "website"])
            identity[kind] = {
                "card_fingerprint": f"card-{other}",
                "device_id": f"dev-{other}",
                "email": f"User{other}+again@Example.com",
                "website": f"https://www.site-{other}.example/",
            }[kind]
        elif rng.random() < 0.5:
            identity["website"] = f"site-{n}.example"
        events: list[dict[str, Any]] = [{"type": "trial_started", "occurred_at": start, "trial_ends_at": start + 14 * DAY, "identity": identity}]
        if rng.random() < 0.1:
            events.append({"type": "cancellation_requested", "occurred_at": start + rng.randrange(14 * DAY),
                           "channel": rng.choice(["dashboard", "email", "chat", "phone", "payment_method_revoked"]),
                           "requested_by": rng.choice(["owner", "owner", "other"])})
        if rng.random() < 0.8:
            events.append({"type": "charged", "occurred_at": start + 14 * DAY, "charge_id": f"{account}-c1",
                           "amount_cents": 4900, "currency": "USD", "reason": "trial_conversion"})
            if rng.random() < 0.15:
                events.append({"type": "refund_issued", "occurred_at": start + 16 * DAY, "charge_id": f"{account}-c1"})
            if rng.random() < 0.3:
                events.append({"type": "charged", "occurred_at": start + 44 * DAY, "charge_id": f"{account}-c2",
                               "amount_cents": 4900, "currency": "USD", "reason": "renewal"})
        if rng.random() < 0.05:
            events.append({"type": "plan_changed", "occurred_at": start + DAY, "plan": "pro"})
        for i, event in enumerate(events):
            at = event["occurred_at"]
            if rng.random() < 0.5:  # half the timestamps as epoch ms, half as RFC 3339
                event["occurred_at"] = format_timestamp(at)
            billing.append((at, account, {"event_id": f"{account}-b{i}", "account_id": account, **event}))
        if rng.random() < 0.7:
            users.append(account)

    items: list[Item] = []
    for at, account, event in billing:
        items.append((at, "billing", account, event, False))
        if rng.random() < 0.05:
            items.append((at + rng.randrange(DAY), "billing", account, event, False))  # delivered twice
    budget = max(0, records - len(items))
    bad_count = budget // 200
    for i in range(budget - bad_count):
        account = rng.choice(users)
        received = T0 + rng.randrange(60 * DAY)
        if rng.random() < 0.15:
            value = {"event_id": f"capi-{seed}-{i}", "account_id": account, "received_at": received,
                     "integration": rng.choice(["shopify", "api", "woocommerce"]), "event_name": "purchase",
                     "value": 19.9, "currency": "USD"}
            items.append((received, "capi", account, value, False))
        else:
            value = {"hit_id": f"hit-{seed}-{i}", "account_id": account, "received_at": received,
                     "property_id": f"prop-{account}", "event_name": "page_view",
                     "page_url": f"https://www.site-{account.rsplit('-', 1)[1].lstrip('0') or '0'}.example/p/{i % 97}",
                     "occurred_at": received - rng.randrange(5000), "click_id": f"clk{i}",
                     "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126 Safari/537.36",
                     "ip": f"198.51.100.{i % 250}"}
            items.append((received, "hits", account, value, False))
    return _arrange(items, bad_count, rng)


# (when, input, key, value, unusable)
Item = tuple[int, str, str | None, dict[str, Any] | bytes | None, bool]
GARBAGE = [b"{not json", b"[1,2]", b'{"hit_id": 1}', b"\xff\xfe", None, b'{"hit_id":"x","account_id":"bad id","received_at":1}']


def _arrange(items: list[Item], bad_count: int, rng: random.Random) -> Workload:
    """Add `bad_count` unusable records; order everything as producers would deliver it."""
    for i in range(bad_count):
        at = T0 + rng.randrange(60 * DAY)
        # kafka-python cannot send a null key with a null value; the key carries no meaning here.
        items.append((at, rng.choice(["hits", "capi", "billing"]), "bad-record", GARBAGE[i % len(GARBAGE)], True))
    rng.shuffle(items)
    # Mostly in time order, but shuffled within windows: earlier evidence and billing arrive late.
    items.sort(key=lambda item: item[0] // (2 * DAY))
    workload = Workload()
    for _, topic, account, value, bad in items:
        workload.add(topic, account, value, bad)
    return workload


def generate_sparse(seed: int, records: int) -> Workload:
    """Accounts whose every record shows in their outcome, so one lost record changes an output.

    Shapes: a trial; a trial charged (eligible); the same with a hit (discretionary); a lone hit;
    a lone Conversion API event; a trial charged and refunded; a dashboard cancellation before
    the trial's charge; an email cancellation before a renewal; two trials sharing a device,
    the later one suspected. One record in 200 is unusable (a dead letter)."""
    rng = random.Random(seed)
    items: list[Item] = []
    bad_count = records // 200
    n = 0
    while len(items) < records - bad_count:
        account, start = f"sparse-{seed}-{n:07d}", T0 + rng.randrange(20 * DAY)
        items += _sparse_account(account, n % 9, start, rng.randrange(30 * DAY))
        n += 1
    return _arrange(items, bad_count, rng)


def _sparse_account(account: str, shape: int, start: int, used_after: int) -> list[Item]:
    def billing(kind: str, at: int, who: str = account, **fields: Any) -> Item:
        value = {"event_id": f"{who}-{kind}", "account_id": who, "type": kind, "occurred_at": format_timestamp(at) if at % 2 else at}
        return (at, "billing", who, value | fields, False)

    def trial(who: str, at: int, device: str) -> Item:
        return billing("trial_started", at, who, trial_ends_at=at + 14 * DAY,
                       identity={"email": f"{who}@example.com", "device_id": device})

    def charge(reason: str = "trial_conversion") -> Item:
        return billing("charged", start + 14 * DAY, charge_id=f"{account}-c1", amount_cents=4900, currency="USD", reason=reason)

    at = start + used_after
    hit = (at, "hits", account, {"hit_id": f"{account}-hit", "account_id": account, "received_at": at,
                                 "page_url": f"https://{account}.example/"}, False)
    capi = (at, "capi", account, {"event_id": f"{account}-capi", "account_id": account, "received_at": at,
                                  "integration": "api"}, False)
    dashboard = billing("cancellation_requested", start + DAY, channel="dashboard", requested_by="owner")
    email = billing("cancellation_requested", start + DAY, channel="email", requested_by="owner")
    shapes: list[list[Item]] = [
        [trial(account, start, f"dev-{account}")],
        [trial(account, start, f"dev-{account}"), charge()],
        [trial(account, start, f"dev-{account}"), charge(), hit],
        [hit],
        [capi],
        [trial(account, start, f"dev-{account}"), charge(), billing("refund_issued", start + 16 * DAY, charge_id=f"{account}-c1")],
        [trial(account, start, f"dev-{account}"), dashboard, charge()],
        [trial(account, start, f"dev-{account}"), email, charge("renewal")],
        # this account's trial, then a later one of another account on the same device
        [trial(account, start, f"dev-{account}"), trial(f"{account}-again", start + DAY, f"dev-{account}")],
    ]
    return shapes[shape]


def decode_inputs(workload: Workload, settings: Settings) -> list[AccountEvent | UsageObserved | None]:
    """Each input as the detector's edge decodes and translates it; None for an unusable one."""
    names = TopicNames.from_settings(settings)
    decoders = edge_decoders(names, settings.translator(), settings.max_record_bytes)
    topic_of = {"hits": names.hits, "capi": names.capi, "billing": names.billing}
    decoded: list[AccountEvent | UsageObserved | None] = []
    for topic, _, value in workload.records:
        try:
            decoded.append(decoders[topic_of[topic]](value))
        except InvalidRecord:
            decoded.append(None)
    return decoded


def expected_outcome(decoded: list[AccountEvent | UsageObserved | None], window: DuplicateWindow) -> dict[str, dict[str, Any]]:
    """The oracle: the policy core run in memory over the decoded inputs, as each account's records."""
    earliest: dict[str, UsageObserved] = {}  # only the earliest evidence of an account can matter
    events = []
    for event in decoded:
        if isinstance(event, UsageObserved):
            known = earliest.get(event.account_id)
            if known is None or evidence_order(event.evidence) < evidence_order(known.evidence):
                earliest[event.account_id] = event
        elif event is not None:
            events.append(event)
    outcome = run_oracle([*events, *earliest.values()], window=window)
    return {
        account: {
            "usage": content(state.usage.model_dump(mode="json")) if state.usage else None,
            "eligibility": content(state.eligibility.model_dump(mode="json")) if state.eligibility else None,
        }
        for account, state in outcome.accounts.items()
    }
