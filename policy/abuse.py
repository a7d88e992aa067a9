"""Repeated-trial abuse: which signals a trial carries, and who on a signal came first.

A signal is a normalised identity value (card, device, email, website host), hashed with a
secret. For each signal the earliest trial (by `occurred_at`, ties: the smaller account id)
keeps its standing; every later account on it is linked to the earlier ones, and told so by a
verdict only when its standing (linked or not, how many, the earliest few) changes; a busy signal
holds its verdicts until it is quiet (`judge_batch`). `signup_ip` is never a signal: shared IPs
(offices, carriers) prove nothing on their own.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations, islice
from urllib.parse import urlsplit

from models.abuse import AbuseVerdict, Claimant, EarlierTrial, Signal, SignalClaim, SignalKind, SignalState, VerdictsDue
from models.inputs import TrialIdentity
from models.outputs import AbuseSummary

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def normalise_email(raw: str) -> str | None:
    local, at, domain = raw.strip().lower().rpartition("@")
    if not at or not local or not domain:
        return None
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local else None


def normalise_website(raw: str) -> str | None:
    """The host alone: scheme, `www.`, port, path, case and a trailing dot dropped."""
    text = raw.strip().lower()
    try:
        host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    except ValueError:  # "http://[", bad IPv6 or NFKC-unsafe netlocs: free text, but no host in it
        return None
    host = host.rstrip(".")
    host = host.removeprefix("www.")
    return host or None


def normalise_plain(raw: str) -> str | None:
    return raw.strip() or None


NORMALISERS: dict[SignalKind, Callable[[str], str | None]] = {
    "card_fingerprint": normalise_plain,
    "device_id": normalise_plain,
    "email": normalise_email,
    "website": normalise_website,
}


def _email_domain(normal: str) -> str:
    return normal.rpartition("@")[2]


@dataclass(frozen=True)
class NeverEvidence:
    """Signal values that prove nothing however many accounts share them: a placeholder device id
    sent by a buggy client, an office's shared email domain or website host. Set by ops; kept
    normalised, so an entry matches every spelling its value has in identities."""

    values: frozenset[tuple[SignalKind, str]] = frozenset()
    email_domains: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> NeverEvidence:
        """From `kind:value` entries (`device_id:0000-0000`, `website:agency.example`), and
        `email:@domain` for every address of a domain. A malformed entry is a ValueError."""
        values: set[tuple[SignalKind, str]] = set()
        domains: set[str] = set()
        for entry in entries:
            kind, _, raw = entry.partition(":")
            if kind not in NORMALISERS:
                raise ValueError(f"{entry!r}: not kind:value with a kind of {', '.join(NORMALISERS)}")
            if kind == "email" and raw.strip().startswith("@"):
                domain = normalise_email(f"x{raw.strip()}")
                if domain is None:
                    raise ValueError(f"{entry!r}: no email domain after '@'")
                domains.add(_email_domain(domain))
                continue
            value = NORMALISERS[kind](raw)
            if value is None:
                raise ValueError(f"{entry!r}: no {kind} value in it")
            values.add((kind, value))
        return cls(values=frozenset(values), email_domains=frozenset(domains))

    def covers(self, kind: SignalKind, value: str) -> bool:
        return (kind, value) in self.values or (kind == "email" and _email_domain(value) in self.email_domains)


def signal(key: bytes, kind: SignalKind, raw: str | None, never_evidence: NeverEvidence = NeverEvidence()) -> Signal | None:
    value = NORMALISERS[kind](raw) if raw else None
    if value is None or never_evidence.covers(kind, value):
        return None
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return Signal(kind=kind, digest=digest)


def identity_signals(
    key: bytes, identity: TrialIdentity | None, never_evidence: NeverEvidence = NeverEvidence()
) -> tuple[Signal, ...]:
    if identity is None:
        return ()
    found = (signal(key, kind, getattr(identity, kind), never_evidence) for kind in NORMALISERS)
    return tuple(sorted({s for s in found if s is not None}, key=lambda s: (s.kind, s.digest)))


LINKED_ACCOUNTS_SHOWN = 25
"""How many linked accounts an eligibility record lists, the earliest first (CONTRACT.md:
`linked_accounts`, at most 25); `linked_count` gives them all. Keeps records and verdicts small
however many accounts share a signal."""


def trial_order(trial: EarlierTrial) -> tuple[int, str]:
    """Earliest trial first; ties go to the smaller account id."""
    return (trial.trial_started_at, trial.account_id)


Position = tuple[int, str]  # a claimant's place in trial order: trial start, account id
BEGINNING: Position = (-(2**63), "")
END: Position = (2**63, "")

# An AbuseVerdict's linked, counted and earliest (as trial start and account id: verdicts are made
# of the few standings that changed, not of every one compared).
Standing = tuple[bool, int, tuple[tuple[int, str], ...]]
UNLINKED: Standing = (False, 0, ())
Passed = tuple[int, str, frozenset[str]]  # a claimant's trial start, account id and lower digests


def _subsets(digests: frozenset[str]) -> list[frozenset[str]]:
    """Every non-empty subset: at most 15, as lower digests are at most 4 (of 5 signals at most)."""
    ordered = sorted(digests)
    return [frozenset(c) for size in range(1, len(ordered) + 1) for c in combinations(ordered, size)]


@dataclass
class _Walk:
    """The claimants passed so far, in trial order, and for every set of lower digests how many of
    them have it: what the standing of the next claimants is computed from."""

    passed: list[Passed] = field(default_factory=list)
    having: Counter[frozenset[str]] = field(default_factory=Counter)

    def count(self, lower_digests: frozenset[str], times: int = 1) -> None:
        for subset in _subsets(lower_digests):
            self.having[subset] += times

    def add(self, claimant: Passed) -> None:
        self.passed.append(claimant)
        self.count(claimant[2])

    def standing(self, lower_digests: frozenset[str]) -> Standing:
        """Those passed that share none of `lower_digests` are counted here, the others on a
        lower signal. Their number by inclusion-exclusion over the subsets (a few lookups, however
        many claimants), and the earliest by a walk that stops as soon as it has them."""
        subsets = _subsets(lower_digests)
        sharing = sum((-1) ** (len(subset) + 1) * self.having[subset] for subset in subsets)
        counted = len(self.passed) - sharing
        earliest = ((at, account) for at, account, theirs in self.passed if not theirs & lower_digests)
        return (bool(self.passed), counted, tuple(islice(earliest, min(counted, LINKED_ACCOUNTS_SHOWN))))


def _walk_before(claimants: dict[str, Claimant], since: Position) -> _Walk:
    """The walk up to `since` in trial order, counted per set of lower digests rather than per
    claimant: most claimants share the same few sets."""
    passed = sorted(
        (c.trial_started_at, account, c.lower_digests)
        for account, c in claimants.items()
        if (c.trial_started_at, account) < since
    )
    walk = _Walk(passed=passed)
    for lower_digests, times in Counter(lower for _, _, lower in passed).items():
        walk.count(lower_digests, times)
    return walk


def _standings_from(claimants: dict[str, Claimant], since: Position, before: _Walk) -> dict[str, Standing]:
    """The standing of every claimant at or after `since` in trial order, the claimants before it
    walked in `before`."""
    walk = _Walk(passed=list(before.passed), having=Counter(before.having))  # a copy: the caller reuses it
    found: dict[str, Standing] = {}
    later = ((c.trial_started_at, a, c.lower_digests) for a, c in claimants.items() if (c.trial_started_at, a) >= since)
    for claimant in sorted(later):
        found[claimant[1]] = walk.standing(claimant[2])
        walk.add(claimant)
    return found


@dataclass(frozen=True)
class Judgement:
    state: SignalState
    verdicts: tuple[AbuseVerdict, ...]  # for the accounts, by way of account-events
    changed: bool  # whether `state` differs from the state the claims were applied to
    due: VerdictsDue | None = None  # for the judge itself, by way of signal-claims: held verdicts to release


def judge(state: SignalState | None, claim: SignalClaim) -> Judgement:
    """Apply one claim to the signal: `judge_together` of one."""
    return judge_together(state, (claim,))


def judge_together(state: SignalState | None, claims: Sequence[SignalClaim]) -> Judgement:
    """Apply claims of one signal in their order; give one verdict to each account whose standing
    differs between the state before them all and after (no verdict stands for unlinked).

    Claims arrive out of trial order (claims of many partitions interleave): judged one by one, an
    earlier trial arriving after later ones changes the standing of every later account, a verdict
    each. Judged together, a burst of claims costs at most one verdict per account it concerns,
    whatever their order. Only accounts from a claimant's trial on (before or after the claim) can
    be affected, so a claim in trial order costs one verdict, however many accounts share the signal.

    `seq` counts the changes one by one (any split of the same claims into batches ends with the
    same state), and every verdict carries the last. A claim that changes nothing sends the
    standings it could have changed again (idempotent): a crash between saving the signal and
    sending its verdicts is repaired when the claim is replayed. A claimant's trial start only ever
    moves earlier (it is the earliest trial), so its current position covers every account its
    last change touched.
    """
    if not claims:
        raise ValueError("judge_together: no claims")
    before = state or SignalState(signal=claims[0].signal)
    claimants = dict(before.claimants)
    seq = before.seq
    since: list[Position] = []  # where each claim's effect starts
    repair: list[Position] = []  # the same, of the claims that changed nothing
    repeated: set[str] = set()  # their accounts: told their standing again
    for claim in claims:
        account = claim.account_id
        prior = claimants.get(account)
        new = None if claim.trial_started_at is None else Claimant(trial_started_at=claim.trial_started_at, lower_digests=claim.lower_digests)
        if new is None:
            claimants.pop(account, None)
        else:
            claimants[account] = new
        # A withdrawal of an unknown claim has lost its position: it starts at the beginning.
        start = min((_at(account, c) for c in (prior, new) if c is not None), default=BEGINNING)
        since.append(start)
        if new == prior:
            repair.append(start)
            repeated.add(account)
        else:
            seq += 1
    after = before.model_copy(update={"claimants": claimants, "seq": seq}) if seq != before.seq else before
    first = min(since)
    earlier = _walk_before(claimants, first)  # the same before the claims: they moved only at or after `first`
    now = _standings_from(claimants, first, earlier)
    then = _standings_from(before.claimants, first, earlier) if claimants != before.claimants else now
    # An account without a verdict on a signal stands unlinked on it: one that joins or leaves the
    # signal unlinked is told nothing (most trials' signals are their own).
    resent = min(repair, default=END)
    concerned = {a for a in now.keys() | {c.account_id for c in claims} if then.get(a, UNLINKED) != now.get(a, UNLINKED)}
    concerned |= {a for a in now if _at(a, claimants[a]) >= resent} | repeated
    standings = {a: now.get(a, UNLINKED) for a in sorted(concerned)}
    return Judgement(state=after, verdicts=_verdicts(after, standings), changed=after is not before)


TELL_AT_ONCE = 1
"""The most standings one batch of a signal's claims may move and still be told at once."""


@dataclass(frozen=True)
class Holding:
    """When a busy signal's verdicts wait. A batch of claims that changes the standing of more than
    `TELL_AT_ONCE` accounts (a storm: many trials sharing a placeholder device id) holds its
    verdicts, and so does every batch after it while any are held: its claims keep arriving out of
    trial order, batch after batch, and each late earlier claim would move the count of every later
    account again, a verdict and an eligibility record each time. Held verdicts are released
    (computed from the claimants as they are then) once a batch passes without a claim changing the
    signal, or when the first has waited `max_hold_ms`: a steady trickle of claims delays them no
    longer. One claim at a time (nearly every trial) is told at once."""

    max_hold_ms: int


def judge_batch(
    state: SignalState | None, claims: Sequence[SignalClaim], dues: Sequence[VerdictsDue], now: int, holding: Holding
) -> Judgement:
    """One batch of a signal's records: its claims judged together (`judge_together`), held while
    the signal is busy, then its due records (the judge's own, sent while holding), which release
    the held verdicts if no claim changed the signal since (or they waited too long). `now`: the
    judge's clock, epoch ms. Whenever verdicts are held after claims, a due record (the signal's
    `seq`) is to be sent: a claim replayed after a crash sends it again."""
    if not claims and not dues:
        raise ValueError("judge_batch: no records")
    before = state or SignalState(signal=(claims or dues)[0].signal)
    judgement = judge_together(before, claims) if claims else Judgement(state=before, verdicts=(), changed=False)
    after = judgement.state
    if claims and (after.held or len(judgement.verdicts) > TELL_AT_ONCE):
        held = after.held | {v.account_id for v in judgement.verdicts}
        since = now if after.held_since is None else after.held_since
        after = after.model_copy(update={"held": held, "held_since": since}) if held != after.held else after
        judgement = Judgement(state=after, verdicts=(), changed=after != before, due=VerdictsDue(signal=after.signal, seq=after.seq))
    if dues and after.held:
        quiet = any(due.seq == after.seq for due in dues)
        waited = 0 if after.held_since is None else now - after.held_since
        if quiet or waited >= holding.max_hold_ms:
            released = after.model_copy(update={"held": frozenset(), "held_since": None})
            standings = _standings_from(dict(after.claimants), BEGINNING, _Walk())
            told = _verdicts(released, {a: standings.get(a, UNLINKED) for a in sorted(after.held)})
            return Judgement(state=released, verdicts=(*judgement.verdicts, *told), changed=True)
    return judgement


def _at(account_id: str, claimant: Claimant) -> Position:
    return (claimant.trial_started_at, account_id)


def _verdicts(state: SignalState, standings: dict[str, Standing]) -> tuple[AbuseVerdict, ...]:
    # Each earlier trial made once: the verdicts of an out-of-order claim share most of theirs.
    trials: dict[tuple[int, str], EarlierTrial] = {}

    def trial(at: int, account_id: str) -> EarlierTrial:
        if (at, account_id) not in trials:
            trials[(at, account_id)] = EarlierTrial(account_id=account_id, trial_started_at=at)
        return trials[(at, account_id)]

    return tuple(
        AbuseVerdict(
            account_id=account_id,
            signal=state.signal,
            seq=state.seq,
            linked=linked,
            counted=counted,
            earliest=tuple(trial(at, earlier) for at, earlier in earliest),
        )
        for account_id, (linked, counted, earliest) in standings.items()
    )


@dataclass(frozen=True)
class CrowdedSignal:
    """A signal whose claimants just reached the configured number: for ops to look at (a
    placeholder or shared value to add to the never-evidence list, or a real abuse ring)."""

    signal: Signal
    claimants: int
    earliest: tuple[str, ...]  # the first accounts on it, whose identities show the raw value


CROWD_EARLIEST_SHOWN = 3


def crowded(before: SignalState | None, after: SignalState, threshold: int) -> CrowdedSignal | None:
    """Whether this claim took the signal's claimants to `threshold`: once on the way up, not on
    every claim after (again only if they fell below it and came back)."""
    if not len(before.claimants if before else ()) < threshold <= len(after.claimants):
        return None
    first = sorted(after.claimants, key=lambda a: (after.claimants[a].trial_started_at, a))[:CROWD_EARLIEST_SHOWN]
    return CrowdedSignal(signal=after.signal, claimants=len(after.claimants), earliest=tuple(first))


def summarise(verdicts: dict[str, AbuseVerdict]) -> AbuseSummary:
    """An account's abuse standing from its per-signal verdicts.

    An earlier account is counted on one signal only (see `SignalClaim`), so the counts add up;
    while a verdict is stale it may be listed by two, hence listed once here.
    """
    linked = [v for v in verdicts.values() if v.linked]
    listed = {trial.account_id: trial for v in verdicts.values() for trial in v.earliest}
    shown = sorted(listed.values(), key=trial_order)[:LINKED_ACCOUNTS_SHOWN]
    return AbuseSummary(
        suspected=bool(linked),
        linked_accounts=tuple(t.account_id for t in shown),
        linked_count=sum(v.counted for v in verdicts.values()),
        signals=tuple(sorted({v.signal.kind for v in linked})),
    )
