from pathlib import Path

from streams.usage_filter import EarliestForwarded, load, save


def test_only_evidence_no_later_than_what_was_forwarded_passes() -> None:
    seen = EarliestForwarded(capacity=10)
    assert seen.admit("a", 100)
    assert not seen.admit("a", 200)  # later: cannot move usage start
    assert seen.admit("a", 100)  # a tie may sort first by source and id: the account decides
    assert seen.admit("a", 50)  # earlier: must reach the account
    assert not seen.admit("a", 60)  # later than the new earliest
    assert seen.admit("b", 500)  # accounts are independent


def test_forgetting_is_bounded_and_only_costs_a_resend() -> None:
    seen = EarliestForwarded(capacity=4)
    for n in range(10):
        assert seen.admit(f"acct-{n}", n)
        assert len(seen) <= 4
    assert seen.admit("acct-0", 1)  # forgotten, so forwarded again
    assert not seen.admit("acct-9", 10)  # the most recent is remembered


def test_capacity_zero_forwards_everything() -> None:
    seen = EarliestForwarded(capacity=0)
    assert seen.admit("a", 1) and seen.admit("a", 2) and len(seen) == 0


def restarted(before: EarliestForwarded, tmp_path: Path, capacity: int = 10) -> EarliestForwarded:
    save(tmp_path / "filter.json", before.snapshot())
    after = EarliestForwarded(capacity)
    after.restore(load(tmp_path / "filter.json"))
    return after


def test_a_restarted_worker_drops_the_hits_its_previous_run_had_made_redundant(tmp_path: Path) -> None:
    before = EarliestForwarded(capacity=10)
    before.admit("a", 100)
    before.admit("b", 300)
    after = restarted(before, tmp_path)
    assert len(after) == 2
    assert after.dominates("a", 200) and not after.admit("a", 200)
    assert after.dominates("b", 301)
    assert after.admit("a", 50)  # earlier evidence still passes


def test_the_very_record_a_previous_run_forwarded_is_forwarded_again(tmp_path: Path) -> None:
    """Its send may not have been flushed when that run died: re-read, it must reach the account."""
    before = EarliestForwarded(capacity=10)
    before.admit("a", 100)
    after = restarted(before, tmp_path)
    assert not after.dominates("a", 100) and after.admit("a", 100)
    assert not restarted(restarted(after, tmp_path), tmp_path).dominates("a", 100)


def test_a_missing_or_unreadable_file_restores_nothing(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.json") == {}
    (tmp_path / "torn.json").write_bytes(b'{"a": 10')
    assert load(tmp_path / "torn.json") == {}
    for odd in (b'[["a", 100, "tracking_tag", "h1"]]', b'{"a": "100"}', b'{"a": 1.5}'):
        (tmp_path / "odd.json").write_bytes(odd)
        seen = EarliestForwarded(capacity=10)
        seen.restore(load(tmp_path / "odd.json"))
        assert len(seen) == 0, odd


def test_restoring_keeps_within_capacity_and_the_most_recent(tmp_path: Path) -> None:
    before = EarliestForwarded(capacity=10)
    for n in range(10):
        before.admit(f"acct-{n}", n)
    after = restarted(before, tmp_path, capacity=4)
    assert len(after) == 4 and after.dominates("acct-9", 10) and not after.dominates("acct-0", 10)


def test_restoring_keeps_the_earlier_of_what_is_known_and_what_was_saved(tmp_path: Path) -> None:
    before = EarliestForwarded(capacity=10)
    before.admit("a", 100)
    save(tmp_path / "filter.json", before.snapshot())
    running = EarliestForwarded(capacity=10)
    running.admit("a", 50)
    running.restore(load(tmp_path / "filter.json"))
    assert running.dominates("a", 60) and not running.dominates("a", 50)
