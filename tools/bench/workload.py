"""The bench's workload: realistic hits of about 500 bytes and trial accounts' billing events."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from models.timestamps import format_timestamp
from tools.traffic import HIT_EVENTS, ITEMS, PAGES, SHOP_KINDS, SHOP_WORDS, USER_AGENTS

# What the hits look like (about 500 bytes, as the collectors send them): traffic's pages, items,
# events and agents, with these besides.
REFERRERS = ("https://www.google.com/", "https://www.bing.com/", "https://t.co/", "", "https://news.ycombinator.com/")
LANGUAGES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP")
SCREENS = ("1920x1080", "1440x900", "390x844", "412x915", "2560x1440")
START_MS = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000


def account_id(number: int) -> str:
    return f"acct-{number:07d}"


def website(number: int) -> str:
    return f"https://www.{SHOP_WORDS[number % 10]}{SHOP_KINDS[number // 10 % 10]}{number}.com"


def exact(value: bytes) -> bytes:
    """A copy of exactly its size: orjson's bytes keep a buffer of 4 KiB or more, whatever their
    length, which for a million kept records is gigabytes."""
    return memoryview(value).tobytes()


class HitMaker:
    """Realistic Tracking Tag hits of about 500 bytes; both timestamp forms, browser skew."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def hit(self, number: int, received_at: int, hit_id: str | None = None) -> tuple[bytes, bytes, str]:
        rng = self.rng
        acct = account_id(number)
        hit_id = hit_id or f"hit_{rng.getrandbits(64):016x}"
        skew = rng.randint(50, 3_000)
        value = {
            "hit_id": hit_id,
            "account_id": acct,
            "received_at": received_at if rng.random() < 0.4 else format_timestamp(received_at),
            "property_id": f"prop_{number:08x}",
            "event_name": rng.choice(HIT_EVENTS),
            "page_url": website(number) + rng.choice(PAGES).format(item=rng.choice(ITEMS)),
            "occurred_at": received_at - skew if rng.random() < 0.5 else format_timestamp(received_at - skew),
            "click_id": f"gclid_{rng.getrandbits(96):024x}" if rng.random() < 0.3 else None,
            "user_agent": rng.choice(USER_AGENTS),
            "ip": f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "referrer": rng.choice(REFERRERS),
            "session_id": f"sess_{rng.getrandbits(64):016x}",
            "language": rng.choice(LANGUAGES),
            "screen": rng.choice(SCREENS),
            "collector": f"collector-{rng.randint(1, 12)}.eu-west-1",
        }
        if value["click_id"] is None:
            del value["click_id"]
        return acct.encode(), exact(orjson.dumps(value)), hit_id


def billing_records(rng: random.Random, number: int) -> list[tuple[bytes, bytes]]:
    """A trial account: trial_started (with an identity of its own) and the trial's charge."""
    acct = account_id(number)
    started = START_MS + rng.randint(0, 10 * DAY_MS)
    trial = {
        "event_id": f"evt_{rng.getrandbits(64):016x}",
        "account_id": acct,
        "type": "trial_started",
        "occurred_at": format_timestamp(started),
        "trial_ends_at": format_timestamp(started + 7 * DAY_MS),
        "identity": {
            "email": f"owner{number}@{website(number)[12:]}",
            "card_fingerprint": f"fp_{rng.getrandbits(64):016x}",
            "device_id": f"dev_{rng.getrandbits(64):016x}",
            "website": website(number),
            "signup_ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        },
    }
    charge = {
        "event_id": f"evt_{rng.getrandbits(64):016x}",
        "account_id": acct,
        "type": "charged",
        "occurred_at": started + 7 * DAY_MS + 60_000,
        "charge_id": f"ch_{rng.getrandbits(64):016x}",
        "amount_cents": rng.choice((2_900, 7_900, 19_900)),
        "currency": "USD",
        "reason": "trial_conversion",
    }
    return [(acct.encode(), exact(orjson.dumps(trial))), (acct.encode(), exact(orjson.dumps(charge)))]


@dataclass
class Workload:
    """What one topic set is pre-filled with.

    `accounts` accounts: `trial_share` of them are trial accounts (trial_started with an
    identity, then charged for the trial); half of those (or `starting` of them) start using the
    product during the run (their first hit comes at a random point, a few more follow), the
    others never do.
    The others are established accounts, sending `hits` hits with a skewed activity (a few
    busy, many quiet). With `warm`, every established account's first hit comes before them,
    so the measured hits run against a detector that knows every account.
    """

    accounts: int
    hits: int
    seed: int = 1
    trial_share: float = 0.1
    warm: bool = False
    starting: int | None = None
    hit_records: list[tuple[bytes, bytes]] = field(default_factory=list)
    billing: list[tuple[bytes, bytes]] = field(default_factory=list)
    warm_hits: int = 0
    established: int = 0
    starters: int = 0

    def build(self) -> Workload:
        rng = random.Random(self.seed)
        maker = HitMaker(self.seed + 1)
        trials = max(1, int(self.accounts * self.trial_share))
        self.established = established = self.accounts - trials
        self.billing = [record for number in range(established, self.accounts) for record in billing_records(rng, number)]
        rng.shuffle(self.billing)
        clock = START_MS + 20 * DAY_MS
        if self.warm:
            order = list(range(established))
            rng.shuffle(order)
            for number in order:
                clock += 1
                key, value, _ = maker.hit(number, clock)
                self.hit_records.append((key, value))
            self.warm_hits = established
        # Positions in the measured stream: established accounts' hits, skewed towards low numbers,
        # and each starting trial account's hits from a random point on.
        slots: list[tuple[float, int]] = []
        starters = list(range(established, self.accounts, 2))[: self.starting]
        self.starters = len(starters)
        per_starter = 5
        steady = max(0, self.hits - per_starter * len(starters))
        for _ in range(steady):
            slots.append((rng.random(), int(established * rng.random() ** 2)))
        for number in starters:
            begin = rng.random()
            slots.extend((begin + (1 - begin) * (k / per_starter) * rng.random(), number) for k in range(per_starter))
        slots.sort()
        step = max(1, (40 * DAY_MS) // max(1, len(slots)))
        for _, number in slots:
            clock += step
            jitter = rng.randint(0, 5_000) if rng.random() < 0.02 else 0  # a collector a little late
            key, value, _ = maker.hit(number, clock - jitter)
            self.hit_records.append((key, value))
        return self

    @property
    def measured_hits(self) -> int:
        return len(self.hit_records) - self.warm_hits

    @property
    def total(self) -> int:
        return len(self.hit_records) + len(self.billing)

    @property
    def mean_hit_bytes(self) -> float:
        sample = self.hit_records[: 10_000]
        return sum(len(v) for _, v in sample) / max(1, len(sample))
