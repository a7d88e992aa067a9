"""Repeated-trial abuse (rule 2): signals, who came first, and independence from arrival order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.abuse import SignalClaim
from models.inputs import TrackingHit, TrialIdentity, TrialStarted
from models.internal import UsageObserved
from models.outputs import TagEvidence
from policy.abuse import identity_signals, judge, normalise_email, normalise_website, signal
from policy.oracle import run
from policy.translate import Translator

KEY = b"test-signal-key"
translate = Translator(KEY)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Jane.Doe@Example.com", "jane.doe@example.com"),
        ("jane.doe+trial7@example.com", "jane.doe@example.com"),
        ("J.a.n.e.Doe+x@gmail.com", "janedoe@gmail.com"),
        ("jane.doe@GoogleMail.com", "janedoe@gmail.com"),
        ("  jane@example.com ", "jane@example.com"),
        ("not-an-email", None),
        ("@example.com", None),
        ("+tag@example.com", None),
    ],
)
def test_email_normalisation(raw: str, normal: str | None) -> None:
    assert normalise_email(raw) == normal


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("https://www.Shop.Example.com:8443/path?q=1", "shop.example.com"),
        ("http://shop.example.com", "shop.example.com"),
        ("shop.example.com/cart", "shop.example.com"),
        ("WWW.shop.example.com.", "shop.example.com"),
        ("", None),
        ("https://", None),
    ],
)
def test_website_normalisation_keeps_the_host_alone(raw: str, host: str | None) -> None:
    assert normalise_website(raw) == host


def test_signals_are_keyed_hashes_never_raw_values() -> None:
    identity = TrialIdentity(email="jane@example.com", card_fingerprint="card-1", device_id="dev-1", website="shop.example", signup_ip="1.2.3.4")
    signals = identity_signals(KEY, identity)
    assert sorted(s.kind for s in signals) == ["card_fingerprint", "device_id", "email", "website"]  # no signup_ip
    text = "".join(s.model_dump_json() for s in signals)
    for raw in ("jane", "card-1", "dev-1", "shop.example", "1.2.3.4"):
        assert raw not in text
    assert signal(b"another-key", "email", "jane@example.com") != signal(KEY, "email", "jane@example.com")
    assert signal(KEY, "email", "Jane@Example.com") == signal(KEY, "email", "jane@example.com")


def test_judge_links_later_claimants_to_earlier_ones_and_ties_go_to_the_smaller_id() -> None:
    s = signal(KEY, "card_fingerprint", "card-1")
    assert s is not None
    state, _ = judge(None, SignalClaim(signal=s, account_id="b", trial_started_at=200))
    state, _ = judge(state, SignalClaim(signal=s, account_id="c", trial_started_at=100))
    state, verdicts = judge(state, SignalClaim(signal=s, account_id="a", trial_started_at=100))
    earlier = {v.account_id: v.earlier_accounts for v in verdicts}
    assert earlier == {"a": (), "c": ("a",), "b": ("a", "c")}
    assert {v.seq for v in verdicts} == {3}
    # A claim repeated changes nothing, and says so again with the same seq.
    again, repeated = judge(state, SignalClaim(signal=s, account_id="a", trial_started_at=100))
    assert again == state and {v.seq for v in repeated} == {3}
    # A withdrawn claim clears that account and frees the others.
    state, verdicts = judge(state, SignalClaim(signal=s, account_id="a", trial_started_at=None))
    assert {v.account_id: v.earlier_accounts for v in verdicts} == {"a": (), "b": ("c",), "c": ()}


def trial_factory(account: str, at: int, **identity: str) -> TrialStarted:
    return TrialStarted(type="trial_started", event_id=f"t-{account}-{at}", account_id=account, occurred_at=at, identity=TrialIdentity(**identity))


def abuse_of(outcome, account: str) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    abuse = outcome.accounts[account].eligibility.abuse
    return (abuse.suspected, abuse.linked_accounts, abuse.signals)


def test_every_shared_signal_kind_is_detected_and_signup_ip_alone_is_not() -> None:
    events = [
        trial_factory("first", 100, email="jane.doe@gmail.com", card_fingerprint="c1", device_id="d1", website="https://shop.example", signup_ip="9.9.9.9"),
        trial_factory("same-card", 200, card_fingerprint="c1"),
        trial_factory("same-device", 300, device_id="d1"),
        trial_factory("gmail-variant", 400, email="Jane.Doe+again@googlemail.com"),
        trial_factory("same-site", 500, website="http://www.shop.example:8080/"),
        trial_factory("same-ip-only", 600, signup_ip="9.9.9.9", email="other@example.com"),
    ]
    outcome = run([translate.billing(e) for e in events])
    assert abuse_of(outcome, "first") == (False, (), ())
    assert abuse_of(outcome, "same-card") == (True, ("first",), ("card_fingerprint",))
    assert abuse_of(outcome, "same-device") == (True, ("first",), ("device_id",))
    assert abuse_of(outcome, "gmail-variant") == (True, ("first",), ("email",))
    assert abuse_of(outcome, "same-site") == (True, ("first",), ("website",))
    assert abuse_of(outcome, "same-ip-only") == (False, (), ())
    suspected = outcome.accounts["same-card"].eligibility
    assert (suspected.state, suspected.reasons) == ("ineligible", ("repeated_trial_abuse",))


def test_the_first_tracked_page_is_a_website_signal_once_the_account_has_a_trial() -> None:
    events = [
        translate.billing(trial_factory("owner", 100, website="shop.example")),
        translate.hit(TrackingHit(hit_id="h1", account_id="copycat", received_at=1000, page_url="https://www.shop.example/landing")),
        translate.billing(trial_factory("copycat", 200, email="new@example.com")),
    ]
    outcome = run(events)
    assert abuse_of(outcome, "copycat") == (True, ("owner",), ("website",))


def test_a_hit_without_a_trial_claims_nothing() -> None:
    hit_event = UsageObserved(account_id="x", evidence=TagEvidence(id="h", page_url="https://a.example", received_at=5), page_signal=signal(KEY, "website", "https://a.example"))
    outcome = run([hit_event])
    assert outcome.signals == {}


identities = st.fixed_dictionaries(
    {},
    optional={
        "email": st.sampled_from(["a@x.com", "A+1@x.com", "b.b@gmail.com", "bb@googlemail.com", "c@x.com"]),
        "card_fingerprint": st.sampled_from(["c1", "c2", "c3"]),
        "device_id": st.sampled_from(["d1", "d2"]),
        "website": st.sampled_from(["https://one.example", "www.one.example/x", "two.example"]),
        "signup_ip": st.sampled_from(["1.1.1.1", "2.2.2.2"]),
    },
)
trials = st.lists(
    st.tuples(st.sampled_from([f"acct-{n}" for n in range(8)]), st.integers(0, 20), identities), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(trials, st.randoms(use_true_random=False))
def test_final_flags_do_not_depend_on_arrival_order(entries, rnd: random.Random) -> None:
    events = [
        translate.billing(TrialStarted(type="trial_started", event_id=f"e{i}", account_id=a, occurred_at=at, identity=TrialIdentity(**ident)))
        for i, (a, at, ident) in enumerate(entries)
    ]
    reference = run(events)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    other = run(shuffled, rng=rnd)
    for account, state in reference.accounts.items():
        assert other.accounts[account].eligibility.abuse == state.eligibility.abuse, account
    # The earliest trial on any signal is never suspected because of that signal.
    for account, state in reference.accounts.items():
        for linked in state.eligibility.abuse.linked_accounts:
            assert reference.accounts[linked].trial_started_at is not None
            assert (reference.accounts[linked].trial_started_at, linked) < (state.trial_started_at, account)


def test_only_the_events_that_made_the_claims_make_them_again() -> None:
    from policy.account import apply

    trial = translate.billing(trial_factory("acct", 100, card_fingerprint="c1", website="https://a.example"))
    first = translate.hit(TrackingHit(hit_id="h1", account_id="acct", received_at=1000, page_url="https://b.example/"))
    later = translate.hit(TrackingHit(hit_id="h2", account_id="acct", received_at=2000, page_url="https://b.example/"))
    state = None
    for event in (trial, first, later):
        state = apply(state, event, now=5).state
    claimed = {c.signal.digest for c in apply(state, trial, now=6).claims}
    assert len(claimed) == 3  # card, website, first page's host: a repeated trial re-claims them all
    assert {c.signal.digest for c in apply(state, first, now=6).claims} == claimed
    assert apply(state, later, now=6).claims == ()  # a later hit never claimed anything
    verdict = apply(None, trial, now=1).claims[0]
    assert apply(state, judge(None, verdict)[1][0], now=6).claims == ()
