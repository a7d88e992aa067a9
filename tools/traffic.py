"""Realistic, seeded input traffic for the demo: trial accounts living through a few weeks.

Every account starts a free trial; what follows is one of the stories real accounts tell
(never used it, used it through the Tracking Tag or the Conversion API, started only after
being charged, cancelled in the dashboard or only claimed to, renewed, was refunded...).
Records carry both timestamp forms, billing webhooks are sometimes delivered twice, a
collector sometimes delivers late, and a few records are malformed. The same seed gives the
same traffic.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from models.timestamps import format_timestamp

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

SIMULATION_START_MS = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
SIGNUP_DAYS = 10  # trials start during the first days
TRIAL_DAYS = 7
RENEWAL_DAYS = 30
# Long enough for the latest trial's renewal.
SIMULATED_DAYS = SIGNUP_DAYS + TRIAL_DAYS + RENEWAL_DAYS + 1
SIMULATION_END_MS = SIMULATION_START_MS + SIMULATED_DAYS * DAY_MS

DUPLICATE_RATE = 0.04  # billing webhooks retried after a timeout
LATE_COLLECTOR_RATE = 0.2  # a collector delivers an account's very first hit hours late

Topic = Literal["hits", "capi", "billing"]

PLANS_CENTS = (2_900, 7_900, 19_900)
CURRENCIES = ("USD", "USD", "USD", "EUR", "GBP")
INTEGRATIONS = ("shopify", "woocommerce", "api")
# Every way of asking to cancel that is not the owner in the dashboard.
CLAIMED_CANCELLATIONS = (
    ("dashboard", "other"),
    ("email", "owner"),
    ("chat", "owner"),
    ("phone", "owner"),
    ("payment_method_revoked", "owner"),
)
PAGES = ("/", "/", "/pricing", "/products/{item}", "/products/{item}", "/blog/{item}", "/cart", "/checkout")
ITEMS = ("linen-shirt", "trail-runner", "espresso-blend", "gift-card", "summer-sale", "how-we-roast", "size-guide")
HIT_EVENTS = ("page_view", "page_view", "page_view", "add_to_cart", "click")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
)
SHOP_WORDS = ("blue", "north", "urban", "quiet", "bright", "little", "green", "copper", "wild", "golden")
SHOP_KINDS = ("fox", "harbor", "bakery", "outfitters", "garden", "studio", "supply", "roasters", "threads", "cycles")
FIRST_NAMES = ("maria", "james", "li", "fatima", "noah", "olga", "ravi", "emma", "kenji", "ana")
LAST_NAMES = ("lopez", "smith", "chen", "haddad", "becker", "ivanova", "patel", "martin", "sato", "silva")


@dataclass(frozen=True)
class Send:
    """One record to publish; `at` is the simulated moment it reaches Kafka (the send order)."""

    at: int
    topic: Topic
    account_id: str
    value: bytes


@dataclass(frozen=True)
class Traffic:
    account_ids: tuple[str, ...]
    sends: tuple[Send, ...]  # in send order
    duplicates: int  # billing events sent a second time
    malformed: int  # records meant for the dead-letter topic


@dataclass(frozen=True)
class Account:
    account_id: str
    website: str
    property_id: str
    trial_started_at: int

    @property
    def trial_ends_at(self) -> int:
        return self.trial_started_at + TRIAL_DAYS * DAY_MS


def timestamp(rng: random.Random, ms: int) -> str | int:
    """Producers differ: epoch milliseconds, RFC 3339 in UTC, or RFC 3339 with a local offset."""
    form = rng.random()
    if form < 0.4:
        return ms
    if form < 0.75:
        return format_timestamp(ms)
    hours = rng.choice((-5, 1, 2, 9))
    return format_timestamp(ms + hours * HOUR_MS)[:-1] + f"{hours:+03d}:00"  # the wall clock there, and its offset


def random_id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}_{rng.getrandbits(64):016x}"


class AccountRecords:
    """Writes one account's records as its producers would publish them."""

    def __init__(self, rng: random.Random, account: Account, sends: list[Send]) -> None:
        self.rng = rng
        self.account = account
        self._sends = sends
        self._currency = rng.choice(CURRENCIES)
        self._plan_cents = rng.choice(PLANS_CENTS)

    def hours(self, low: float, high: float) -> int:
        return int(self.rng.uniform(low, high) * HOUR_MS)

    def _send(self, at: int, topic: Topic, value: dict[str, Any]) -> None:
        self._sends.append(Send(at, topic, self.account.account_id, orjson.dumps(value)))

    def billing(self, type_: str, at: int, **fields: Any) -> None:
        value = {
            "event_id": random_id(self.rng, "evt"),
            "account_id": self.account.account_id,
            "type": type_,
            "occurred_at": timestamp(self.rng, at),
            **fields,
        }
        self._send(at, "billing", value)
        if self.rng.random() < DUPLICATE_RATE:
            self._send(at + self.hours(0.1, 2), "billing", value)

    def trial_started(self, identity: dict[str, str]) -> None:
        ends_at = timestamp(self.rng, self.account.trial_ends_at)
        self.billing("trial_started", self.account.trial_started_at, trial_ends_at=ends_at, identity=identity)

    def charge(self, reason: str, at: int | None = None) -> tuple[str, int]:
        """Charges at `at`, by default when the trial ends; returns (charge_id, when)."""
        at = at if at is not None else self.account.trial_ends_at + self.hours(0.05, 1)
        charge_id = random_id(self.rng, "ch")
        amount = {"amount_cents": self._plan_cents, "currency": self._currency}
        self.billing("charged", at, charge_id=charge_id, reason=reason, **amount)
        return charge_id, at

    def renewal(self, charged_at: int) -> None:
        self.charge("renewal", charged_at + RENEWAL_DAYS * DAY_MS)

    def cancel(self, at: int, channel: str = "dashboard", requested_by: str = "owner") -> None:
        self.billing("cancellation_requested", at, channel=channel, requested_by=requested_by)

    def refund(self, at: int, charge_id: str) -> None:
        self.billing("refund_issued", at, charge_id=charge_id)

    def tag_hits(self, start: int) -> None:
        """The Tracking Tag fires from `start` on, a few hits a day, until the simulation ends."""
        received = [start, start + self.hours(0.2, 1)]
        for day in range((SIMULATION_END_MS - start) // DAY_MS + 1):
            received += [start + day * DAY_MS + self.hours(0, 24) for _ in range(self.rng.randint(0, 3))]
        late_first = self.rng.random() < LATE_COLLECTOR_RATE
        for index, at in enumerate(r for r in received if r < SIMULATION_END_MS):
            delivered = at + self.hours(2, 10) if index == 0 and late_first else at
            self._send(delivered, "hits", self._hit(at))

    def _hit(self, received_at: int) -> dict[str, Any]:
        rng = self.rng
        path = rng.choice(PAGES).format(item=rng.choice(ITEMS))
        # The browser's clock: usually close, sometimes days off. Never trusted.
        skew = rng.randint(50, 3_000) if rng.random() < 0.95 else rng.randint(1, 400) * DAY_MS
        return {
            "hit_id": random_id(rng, "hit"),
            "account_id": self.account.account_id,
            "received_at": timestamp(rng, received_at),
            "property_id": self.account.property_id,
            "event_name": rng.choice(HIT_EVENTS),
            "page_url": f"{self.account.website}{path}",
            "occurred_at": timestamp(rng, received_at - skew),
            "user_agent": rng.choice(USER_AGENTS),
            "ip": random_ip(rng),
        }

    def conversion_events(self, start: int) -> None:
        """The account's servers send purchases or leads from `start` on."""
        integration = self.rng.choice(INTEGRATIONS)
        at = start
        while at < SIMULATION_END_MS:
            self._send(at, "capi", self._conversion(at, integration))
            at += self.hours(3, 40)

    def _conversion(self, received_at: int, integration: str) -> dict[str, Any]:
        rng = self.rng
        event = {
            "event_id": random_id(rng, "capi"),
            "account_id": self.account.account_id,
            "received_at": timestamp(rng, received_at),
            "integration": integration,
            "occurred_at": timestamp(rng, received_at - rng.randint(100, 60_000)),
        }
        if rng.random() < 0.3:
            return {**event, "event_name": "lead"}
        order = {"transaction_id": random_id(rng, "order"), "value": round(rng.uniform(12, 240), 2), "currency": self._currency}
        return {**event, "event_name": "purchase", **order}

    def some_usage(self, start: int) -> None:
        """Usage from `start`: the Tracking Tag, the Conversion API, or both."""
        kind = self.rng.random()
        if kind < 0.75:
            self.tag_hits(start)
        if kind > 0.6:
            self.conversion_events(start + self.hours(0, 48))


def random_ip(rng: random.Random) -> str:
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


# The stories; each account's trial has started when its story begins.


def never_used(r: AccountRecords) -> None:
    """Charged for an unused trial -> eligible (trial_charge_unused), whatever else it claims."""
    _, charged_at = r.charge("trial_conversion")
    if r.rng.random() < 0.4:
        r.cancel(charged_at + r.hours(2, 72), r.rng.choice(("email", "chat", "phone")))


def refunded_after_unused_trial(r: AccountRecords) -> None:
    """Unused, charged, cancelled and refunded by support -> refunded."""
    charge_id, charged_at = r.charge("trial_conversion")
    r.cancel(charged_at + r.hours(1, 30))
    r.refund(charged_at + r.hours(31, 96), charge_id)


def uses_during_trial(r: AccountRecords) -> None:
    """Used during the trial, then charged -> discretionary (trial_charge_used)."""
    r.some_usage(r.account.trial_started_at + r.hours(0.5, 72))
    _, charged_at = r.charge("trial_conversion")
    if r.rng.random() < 0.5:
        r.cancel(charged_at + r.hours(48, 500))  # leaves before the renewal


def starts_after_trial_charge(r: AccountRecords) -> None:
    """Charged for an unused trial, starts using it a day or more later: eligible -> discretionary."""
    _, charged_at = r.charge("trial_conversion")
    r.some_usage(charged_at + r.hours(24, 120))


def renews(r: AccountRecords) -> None:
    """Used it and renewed -> ineligible (no_refund_for_unused_time)."""
    r.some_usage(r.account.trial_started_at + r.hours(1, 120))
    _, charged_at = r.charge("trial_conversion")
    r.renewal(charged_at)


def claims_cancellation_elsewhere(r: AccountRecords) -> None:
    """Asked to cancel by email, chat, phone, a revoked card or as a non-owner; then renewed ->
    ineligible (cancellation_not_via_dashboard)."""
    r.some_usage(r.account.trial_started_at + r.hours(1, 120))
    _, charged_at = r.charge("trial_conversion")
    channel, requested_by = r.rng.choice(CLAIMED_CANCELLATIONS)
    r.cancel(charged_at + r.hours(48, 600), channel, requested_by)
    r.renewal(charged_at)


def cancels_in_dashboard(r: AccountRecords) -> None:
    """The owner cancels in the dashboard during the trial and is never charged -> no_charge."""
    r.cancel(r.account.trial_started_at + r.hours(2, TRIAL_DAYS * 24 - 2))


def charged_despite_dashboard_cancellation(r: AccountRecords) -> None:
    """The owner cancelled in the dashboard, billing charged anyway ->
    eligible (charged_after_dashboard_cancellation), even after some use."""
    if r.rng.random() < 0.5:
        r.some_usage(r.account.trial_started_at + r.hours(1, 24))
    r.cancel(r.account.trial_started_at + r.hours(30, TRIAL_DAYS * 24 - 2))
    r.charge("trial_conversion")


Story = Callable[[AccountRecords], None]

# Dealt in this order, so that even a dozen accounts cover every story; more accounts repeat it.
DECK: tuple[Story, ...] = (
    never_used,
    uses_during_trial,
    starts_after_trial_charge,
    renews,
    cancels_in_dashboard,
    claims_cancellation_elsewhere,
    charged_despite_dashboard_cancellation,
    refunded_after_unused_trial,
    uses_during_trial,
    never_used,
    starts_after_trial_charge,
    renews,
)


# From the 24th account on, every 12th repeats the trial of the account 6 before it with the same
# card: a repeated free trial under a new identity, which rule 2 must catch.
REPEAT_TRIAL_EVERY = 12
REPEAT_TRIAL_FROM = 24
REPEAT_TRIAL_OF = 6


def identity(rng: random.Random, number: int, host: str) -> dict[str, str]:
    """Distinct for every account, so that only the deliberate repeated trials look like one."""
    if rng.random() < 0.4:
        email = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{number}@gmail.com"
    else:
        email = f"{rng.choice(FIRST_NAMES)}@{host}"
    return {
        "email": email,
        "card_fingerprint": random_id(rng, "fp"),
        "device_id": random_id(rng, "dev"),
        "website": f"https://www.{host}",
        "signup_ip": random_ip(rng),
    }


def shop_hosts(rng: random.Random, count: int) -> list[str]:
    names = [f"{word}{kind}" for word in SHOP_WORDS for kind in SHOP_KINDS]
    rng.shuffle(names)
    return [f"{names[i % len(names)]}{i // len(names) or ''}.com" for i in range(count)]


def random_moment(rng: random.Random) -> int:
    return SIMULATION_START_MS + rng.randint(DAY_MS, SIMULATION_END_MS - SIMULATION_START_MS - DAY_MS)


def malformed(rng: random.Random, account_ids: tuple[str, ...]) -> list[Send]:
    """What upstream bugs produce: a truncated hit, an undefined billing type, a display name as id."""
    victim = rng.choice(account_ids)
    hit = {"hit_id": random_id(rng, "hit"), "account_id": victim, "received_at": random_moment(rng)}
    unknown_type = {"event_id": random_id(rng, "evt"), "account_id": victim, "type": "trial_extended"}
    display_name = {"event_id": random_id(rng, "capi"), "account_id": "Acme Corp", "integration": "api"}
    return [
        Send(random_moment(rng), "hits", victim, orjson.dumps(hit)[:-9]),  # cut off mid-record
        Send(random_moment(rng), "billing", victim, orjson.dumps({**unknown_type, "occurred_at": random_moment(rng)})),
        Send(random_moment(rng), "capi", "Acme Corp", orjson.dumps({**display_name, "received_at": random_moment(rng)})),
    ]


def generate(accounts: int, seed: int) -> Traffic:
    rng = random.Random(seed)
    account_ids = tuple(f"acct-{number:03d}" for number in range(1, accounts + 1))
    stories = [DECK[i % len(DECK)] for i in range(accounts)]
    rng.shuffle(stories)
    sends: list[Send] = []
    identities: list[dict[str, str]] = []
    for number, (account_id, host, story) in enumerate(zip(account_ids, shop_hosts(rng, accounts), stories, strict=True), start=1):
        account = Account(
            account_id=account_id,
            website=f"https://www.{host}",
            property_id=random_id(rng, "prop"),
            trial_started_at=SIMULATION_START_MS + rng.randint(0, SIGNUP_DAYS * DAY_MS - 1),
        )
        records = AccountRecords(rng, account, sends)
        identities.append(identity(rng, number, host))
        if number >= REPEAT_TRIAL_FROM and number % REPEAT_TRIAL_EVERY == 0:
            identities[-1]["card_fingerprint"] = identities[-1 - REPEAT_TRIAL_OF]["card_fingerprint"]
        records.trial_started(identities[-1])
        story(records)
    duplicates = len(sends) - len({send.value for send in sends})  # every other record has its own id
    unusable = malformed(rng, account_ids)
    sends = sorted(sends + unusable, key=lambda send: send.at)
    return Traffic(account_ids=account_ids, sends=tuple(sends), duplicates=duplicates, malformed=len(unusable))
