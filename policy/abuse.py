"""Repeated-trial abuse: which signals a trial carries, and who on a signal came first.

A signal is a normalised identity value (card, device, email, website host), hashed with a
secret. For each signal the earliest trial (by `occurred_at`, ties: the smaller account id)
keeps its standing; every later account on it is linked to the earlier ones. `signup_ip` is
never a signal: shared IPs (offices, carriers) prove nothing on their own.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from models.abuse import AbuseVerdict, Signal, SignalClaim, SignalKind, SignalState
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
    if host.startswith("www."):
        host = host[4:]
    return host or None


def normalise_plain(raw: str) -> str | None:
    return raw.strip() or None


NORMALISERS = {
    "card_fingerprint": normalise_plain,
    "device_id": normalise_plain,
    "email": normalise_email,
    "website": normalise_website,
}


def signal(key: bytes, kind: SignalKind, raw: str | None) -> Signal | None:
    value = NORMALISERS[kind](raw) if raw else None
    if value is None:
        return None
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return Signal(kind=kind, digest=digest)


def identity_signals(key: bytes, identity: TrialIdentity | None) -> tuple[Signal, ...]:
    if identity is None:
        return ()
    found = (signal(key, kind, getattr(identity, kind)) for kind in NORMALISERS)
    return tuple(sorted({s for s in found if s is not None}, key=lambda s: (s.kind, s.digest)))


def earlier_accounts(claimants: dict[str, int], account_id: str) -> tuple[str, ...]:
    mine = (claimants[account_id], account_id)
    return tuple(sorted(other for other, at in claimants.items() if (at, other) < mine))


def judge(state: SignalState | None, claim: SignalClaim) -> tuple[SignalState, tuple[AbuseVerdict, ...]]:
    """Apply a claim to the signal; return the verdict of every account the signal concerns.

    Verdicts are sent even when nothing changed: they are idempotent (same `seq`), and a crash
    between saving the signal and sending its verdicts is repaired when the claim is replayed.
    """
    before = state or SignalState(signal=claim.signal)
    claimants = dict(before.claimants)
    if claim.trial_started_at is None:
        claimants.pop(claim.account_id, None)
    else:
        claimants[claim.account_id] = claim.trial_started_at
    changed = claimants != before.claimants
    after = SignalState(signal=before.signal, claimants=claimants, seq=before.seq + 1) if changed else before
    concerned = sorted(set(claimants) | ({claim.account_id} if changed else set()))
    verdicts = tuple(
        AbuseVerdict(
            account_id=account,
            signal=after.signal,
            seq=after.seq,
            earlier_accounts=earlier_accounts(claimants, account) if account in claimants else (),
        )
        for account in concerned
    )
    return after, verdicts


def summarise(verdicts: dict[str, AbuseVerdict]) -> AbuseSummary:
    """An account's abuse standing from its per-signal verdicts."""
    linked = {account for v in verdicts.values() for account in v.earlier_accounts}
    kinds = {v.signal.kind for v in verdicts.values() if v.earlier_accounts}
    return AbuseSummary(suspected=bool(linked), linked_accounts=tuple(sorted(linked)), signals=tuple(sorted(kinds)))
