"""The usage stage's core (`policy.usage.observe`) against CONTRACT.md "usage.state": usage starts
at the earliest evidence, whatever the order it arrives in; each change has the next version; the
record is sent on to the account's processor exactly when that could matter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.abuse import Signal
from models.internal import UsageObserved, UsageRecorded
from policy.usage import evidence_order, observe
from tests.unit.factories import MINUTE, C, make_capi, make_hit

evidence = st.lists(
    st.tuples(st.integers(0, 20), st.sampled_from(["hit", "capi"]), st.integers(0, 3)), min_size=1, max_size=30
).map(lambda drawn: [(make_hit if kind == "hit" else make_capi)(C + at * MINUTE, f"{kind}-{n}") for at, kind, n in drawn])


def observed_all(events: list[UsageObserved]) -> tuple[UsageRecorded, list[tuple[UsageRecorded, bool, bool]]]:
    recorded: UsageRecorded | None = None
    steps = []
    for n, event in enumerate(events):
        step = observe(recorded, event, now=C + n)
        steps.append((step.recorded, step.changed, step.send_on))
        recorded = step.recorded
    assert recorded is not None
    return recorded, steps


@given(events=evidence, data=st.data())
def test_the_usage_start_is_the_earliest_evidence_in_any_arrival_order(events: list[UsageObserved], data: st.DataObject) -> None:
    reordered = data.draw(st.permutations(events), label="arrival order")
    earliest = min((e.evidence for e in events), key=evidence_order)
    for order in (events, reordered):
        final, _ = observed_all(order)
        assert final.usage.first_evidence == earliest and final.usage.usage_started_at == earliest.received_at


@given(events=evidence)
def test_each_change_has_the_next_version_and_anything_else_publishes_the_current_record(events: list[UsageObserved]) -> None:
    _, steps = observed_all(events)
    version = 0
    for n, (recorded, changed, send_on) in enumerate(steps):
        if changed:
            version += 1
            assert recorded.usage.detected_at == C + n, "stamped with the now of the step"
            assert send_on, "a change reaches the decision"
        else:
            assert recorded == steps[n - 1][0], "the current record, unchanged (its stamp too)"
            # Sent on again only when this is the evidence that made it: a crash may have lost that sending.
            assert send_on == (events[n].evidence == recorded.usage.first_evidence)
        assert recorded.usage.version == version


def test_a_record_carries_the_hashed_page_host_of_its_first_evidence() -> None:
    """The website signal of abuse (the host of the account's first tracked page) follows the usage start."""
    page = Signal(kind="website", digest="digest-of-shop.example")
    hit = make_hit(C + MINUTE, "h2").model_copy(update={"page_signal": page})
    recorded = observe(None, hit, now=C).recorded
    assert recorded.page_signal == page
    assert observe(recorded, make_capi(C + 2 * MINUTE), now=C + 1).recorded.page_signal == page, "a later event: unchanged"
    assert observe(recorded, make_capi(C), now=C + 1).recorded.page_signal is None, "an earlier CAPI event has no page"
