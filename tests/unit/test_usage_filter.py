from streams.usage_filter import EarliestForwarded


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
