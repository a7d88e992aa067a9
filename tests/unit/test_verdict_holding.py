"""A busy signal holds its verdicts until it is quiet (`policy.abuse.judge_batch`, `Holding`)."""

from __future__ import annotations

import random
import zlib
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.abuse import AbuseVerdict, SignalClaim, SignalState, VerdictsDue
from models.internal import TrialBegan
from models.outputs import RefundEligibility
from policy.abuse import Holding, judge_batch, signal
from policy.oracle import Outcome
from tests.unit.stages import detector_step
from tests.unit.test_abuse import KEY, crowd_in_trial_order, placeholder_claims, storm_batches, true_standings, viewed

HOLDING = Holding(max_hold_ms=30_000)
SIGNAL = signal(KEY, "device_id", "placeholder")


def due(state: SignalState, seq: int | None = None) -> VerdictsDue:
    return VerdictsDue(signal=state.signal, seq=state.seq if seq is None else seq)


def test_one_claim_at_a_time_is_told_at_once() -> None:
    first = judge_batch(None, placeholder_claims(range(1)), (), now=0, holding=HOLDING)
    second = judge_batch(first.state, placeholder_claims(range(1, 2)), (), now=0, holding=HOLDING)
    assert (first.verdicts, first.due) == ((), None), "the first trial stands unlinked: nothing to say"
    assert [v.account_id for v in second.verdicts] == ["acct-0001"] and second.due is None
    assert not second.state.held and second.state.held_since is None


def test_a_batch_moving_several_standings_holds_them_and_sends_itself_a_due_record() -> None:
    judgement = judge_batch(None, placeholder_claims(range(5)), (), now=1_000, holding=HOLDING)
    assert judgement.verdicts == () and judgement.changed
    assert judgement.state.held == {f"acct-{n:04d}" for n in range(1, 5)} and judgement.state.held_since == 1_000
    assert judgement.due == due(judgement.state) and judgement.state.seq == 5
    # While anything is held, a claim of one account is held too: its verdict would go out of turn.
    later = judge_batch(judgement.state, placeholder_claims(range(5, 6)), (), now=2_000, holding=HOLDING)
    assert later.verdicts == () and "acct-0005" in later.state.held
    assert later.state.held_since == 1_000, "held since the first"
    assert later.due == due(later.state)


def test_a_due_record_releases_the_held_verdicts_once_no_claim_changed_the_signal() -> None:
    held = judge_batch(None, placeholder_claims(range(1, 5)), (), now=0, holding=HOLDING)
    late = judge_batch(held.state, placeholder_claims(range(1)), (), now=500, holding=HOLDING)  # the earliest, late
    stale = judge_batch(late.state, (), (held.due,), now=1_000, holding=HOLDING)
    assert (stale.verdicts, stale.changed, stale.due) == ((), False, None), "a claim came since: a newer due follows"
    released = judge_batch(late.state, (), (late.due,), now=1_000, holding=HOLDING)
    assert released.changed and not released.state.held and released.state.held_since is None
    truth = true_standings(released.state)
    assert {v.account_id: viewed(v) for v in released.verdicts} == {a: truth[a] for a in truth if a != "acct-0000"}
    assert {v.seq for v in released.verdicts} == {released.state.seq}
    again = judge_batch(released.state, (), (late.due,), now=2_000, holding=HOLDING)
    assert (again.verdicts, again.changed) == ((), False), "a duplicate due releases nothing twice"


def test_claims_that_keep_coming_are_released_when_the_first_has_waited_too_long() -> None:
    holding = Holding(max_hold_ms=10_000)
    state = judge_batch(None, placeholder_claims(range(3)), (), now=0, holding=holding).state
    dues = [due(state)]
    for n, now in zip(range(3, 6), (4_000, 8_000, 12_000), strict=True):
        judgement = judge_batch(state, placeholder_claims(range(n, n + 1)), dues, now=now, holding=holding)
        state, dues = judgement.state, [judgement.due] if judgement.due else []
        if now < 10_000:
            assert judgement.verdicts == () and state.held
    assert not state.held and {v.account_id for v in judgement.verdicts} == {f"acct-{n:04d}" for n in range(1, 6)}


def test_a_replayed_claim_while_held_sends_the_due_record_again() -> None:
    """Crash repair: the signal saved holding, its due record lost; the batch read again."""
    batch = placeholder_claims(range(4))
    held = judge_batch(None, batch, (), now=0, holding=HOLDING)
    replay = judge_batch(held.state, batch, (), now=100, holding=HOLDING)
    assert replay.verdicts == () and replay.due == held.due and replay.state.seq == held.state.seq
    assert replay.state.held >= held.state.held, "still held, to be told once quiet"


def test_a_withdrawn_claim_held_is_told_it_stands_unlinked() -> None:
    held = judge_batch(None, placeholder_claims(range(4)), (), now=0, holding=HOLDING)
    withdrawal = SignalClaim(signal=SIGNAL, account_id="acct-0003", trial_started_at=None)
    state = judge_batch(held.state, (withdrawal,), (), now=1, holding=HOLDING).state
    released = judge_batch(state, (), (due(state),), now=2, holding=HOLDING)
    assert {v.account_id: viewed(v) for v in released.verdicts}["acct-0003"] == (False, 0, ())


def judge_with_holding(batches: list[list[SignalClaim]], rnd: random.Random) -> tuple[SignalState, dict[str, AbuseVerdict]]:
    """The judge's shell in memory: each batch's due record comes back a batch or a few later, in
    the order sent, and batches of nothing but due records follow until none is left."""
    state: SignalState | None = None
    latest: dict[str, AbuseVerdict] = {}  # as process-accounts keeps them: the highest seq
    in_flight: list[VerdictsDue] = []
    queue = list(batches)
    now = 0
    while queue or in_flight:
        claims = queue.pop(0) if queue else []
        arrived = rnd.randint(0, len(in_flight)) if queue else len(in_flight)
        dues, in_flight = in_flight[:arrived], in_flight[arrived:]
        now += 1_000
        if not claims and not dues:
            continue
        judgement = judge_batch(state, claims, dues, now, HOLDING)
        for verdict in judgement.verdicts:
            if verdict.account_id not in latest or latest[verdict.account_id].seq <= verdict.seq:
                latest[verdict.account_id] = verdict
        if judgement.due is not None:
            in_flight.append(judgement.due)
        state = judgement.state
    assert state is not None
    return state, latest


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(storm_batches(), st.randoms(use_true_random=False))
def test_held_or_not_claims_in_any_order_and_batches_end_right(batches, rnd: random.Random) -> None:
    state, latest = judge_with_holding(batches, rnd)
    assert not state.held, "every held verdict released in the end"
    truth = true_standings(state)
    for account, verdict in latest.items():
        assert viewed(verdict) == truth.get(account, (False, 0, ())), account
    assert all(account in latest for account, standing in truth.items() if standing[0]), "every linked account told"


def interleaved_from_partitions(trials: list[TrialBegan], partitions: int, rnd: random.Random) -> list[TrialBegan]:
    """Trials produced in trial order, as read from `partitions` partitions (by account): each
    partition's in order, the partitions' progress apart."""
    queues: list[list[TrialBegan]] = [[] for _ in range(partitions)]
    for trial in trials:
        queues[zlib.crc32(trial.account_id.encode()) % partitions].append(trial)
    arrival: list[TrialBegan] = []
    while any(queues):
        queue = rnd.choice([q for q in queues if q])
        arrival += [queue.pop(0) for _ in range(min(len(queue), rnd.randint(1, 40)))]
    return arrival


def test_a_storm_in_trial_order_read_from_many_partitions_costs_each_account_two_eligibility_records() -> None:
    """Its own trial, then its verdict once the signal is quiet: whatever the partitions' pace."""
    outcome = Outcome()
    published: Counter[str] = Counter()
    signal_state: SignalState | None = None
    arrival = interleaved_from_partitions(crowd_in_trial_order(1_000), 8, random.Random(15))
    batches = [arrival[start : start + 150] for start in range(0, len(arrival), 150)]
    in_flight: list[VerdictsDue] = []
    now = 0
    while batches or in_flight:
        claims = []
        for trial in batches.pop(0) if batches else []:
            step = detector_step(outcome.accounts.get(trial.account_id), trial, now=now)
            outcome.accounts[trial.account_id] = step.state
            published[trial.account_id] += sum(isinstance(r, RefundEligibility) for r in step.records)
            claims += step.claims
        now += 1_000
        judgement = judge_batch(signal_state, claims, in_flight, now, HOLDING)
        signal_state, in_flight = judgement.state, [judgement.due] if judgement.due else []
        for verdict in judgement.verdicts:
            step = detector_step(outcome.accounts[verdict.account_id], verdict, now=now)
            outcome.accounts[verdict.account_id] = step.state
            published[verdict.account_id] += sum(isinstance(r, RefundEligibility) for r in step.records)
    assert len(published) == 1_000 and max(published.values()) == 2
    assert all(outcome.accounts[f"acct-{n:04d}"].eligibility.abuse.linked_count == n for n in range(1_000))
