from pathlib import Path

from streams.usage_filter import EarliestForwarded, load, save


def test_only_evidence_earlier_than_what_was_forwarded_passes() -> None:
    seen = EarliestForwarded(capacity=10)
    assert seen.admit("a", (100, "tracking_tag", "h1"))
    assert not seen.admit("a", (100, "tracking_tag", "h1"))  # the same hit again
    assert not seen.admit("a", (200, "tracking_tag", "h2"))  # later: cannot move usage start
    assert seen.admit("a", (50, "conversion_api", "e1"))  # earlier: must reach the account
    assert not seen.admit("a", (60, "tracking_tag", "h3"))
    assert seen.admit("b", (500, "tracking_tag", "h4"))  # accounts are independent


def test_forgetting_is_bounded_and_only_costs_a_resend() -> None:
    seen = EarliestForwarded(capacity=4)
    for n in range(10):
        assert seen.admit(f"acct-{n}", (n, "tracking_tag", "h"))
        assert len(seen) <= 4
    assert seen.admit("acct-0", (0, "tracking_tag", "h"))  # forgotten, so forwarded again
    assert not seen.admit("acct-9", (9, "tracking_tag", "h"))  # the most recent is remembered


def test_capacity_zero_forwards_everything() -> None:
    seen = EarliestForwarded(capacity=0)
    assert seen.admit("a", (1, "tracking_tag", "h")) and seen.admit("a", (1, "tracking_tag", "h"))


def restarted(before: EarliestForwarded, tmp_path: Path, capacity: int = 10) -> EarliestForwarded:
    save(tmp_path / "filter.json", before.snapshot())
    after = EarliestForwarded(capacity)
    after.restore(load(tmp_path / "filter.json"))
    return after


def test_a_restarted_worker_drops_the_hits_its_previous_run_had_made_redundant(tmp_path: Path) -> None:
    before = EarliestForwarded(capacity=10)
    before.admit("a", (100, "tracking_tag", "h1"))
    before.admit("b", (300, "conversion_api", "e1"))
    after = restarted(before, tmp_path)
    assert len(after) == 2
    assert after.dominates("a", (200, "tracking_tag", "h2")) and not after.admit("a", (200, "tracking_tag", "h2"))
    assert after.dominates("b", (300, "tracking_tag", "h0"))  # same time, a later source
    assert after.admit("a", (50, "tracking_tag", "h0"))  # earlier evidence still passes


def test_the_very_record_a_previous_run_forwarded_is_forwarded_again(tmp_path: Path) -> None:
    """Its send may not have been flushed when that run died: re-read, it must reach the account."""
    before = EarliestForwarded(capacity=10)
    before.admit("a", (100, "tracking_tag", "h1"))
    after = restarted(before, tmp_path)
    assert not after.dominates("a", (100, "tracking_tag", "h1"))
    assert after.admit("a", (100, "tracking_tag", "h1"))
    assert not after.admit("a", (100, "tracking_tag", "h1"))  # forwarded in this run: now it counts
    assert not restarted(restarted(after, tmp_path), tmp_path).dominates("a", (100, "tracking_tag", "h1"))


def test_a_missing_or_unreadable_file_restores_nothing(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.json") == []
    (tmp_path / "torn.json").write_bytes(b'[["a", 100, "tracking_ta')
    assert load(tmp_path / "torn.json") == []
    (tmp_path / "odd.json").write_bytes(b'[["a", 100]]')
    seen = EarliestForwarded(capacity=10)
    seen.restore(load(tmp_path / "odd.json"))
    assert len(seen) == 0


def test_restoring_keeps_within_capacity(tmp_path: Path) -> None:
    before = EarliestForwarded(capacity=10)
    for n in range(10):
        before.admit(f"acct-{n}", (n, "tracking_tag", "h"))
    after = restarted(before, tmp_path, capacity=4)
    assert len(after) == 4 and after.dominates("acct-9", (9, "tracking_tag", "i"))
