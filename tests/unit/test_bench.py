"""The bench's own pieces that need no broker: sizes, workload shape, profile summary."""

from pathlib import Path

import orjson

from models.codec import decode
from streams.edge import HITS
from tools.bench.command import count
from tools.bench.profile import summarise_profile
from tools.bench.workload import Workload


def test_counts_accept_k_and_m() -> None:
    assert (count("10k"), count("1M"), count("2_500"), count("1.5m")) == (10_000, 1_000_000, 2_500, 1_500_000)


def test_workload_hits_are_realistic_and_valid() -> None:
    workload = Workload(accounts=200, hits=2_000, seed=3, warm=True).build()
    assert 400 <= workload.mean_hit_bytes <= 600
    assert workload.warm_hits == workload.established == 180
    assert workload.measured_hits == 2_000
    assert len(workload.billing) == 2 * 20  # trial_started and the trial's charge per trial account
    for key, value in workload.hit_records[:200]:
        hit = decode(HITS, value, 262_144)
        assert hit.account_id.encode() == key
    assert {orjson.loads(v)["type"] for _, v in workload.billing} == {"trial_started", "charged"}


def test_usage_starts_among_the_measured_hits_can_be_fixed_whatever_the_accounts() -> None:
    def trial_accounts_with_hits(workload: Workload) -> set[str]:
        measured = workload.hit_records[workload.warm_hits :]
        trial_accounts = {key for key, _ in workload.billing}
        return {key.decode() for key, _ in measured if key in trial_accounts}

    small = Workload(accounts=1_000, hits=3_000, seed=1, warm=True, trial_share=0.01).build()
    large = Workload(accounts=20_000, hits=3_000, seed=2, warm=True, trial_share=0.01, starting=small.starters).build()
    assert small.starters == 5 and len(trial_accounts_with_hits(small)) == 5
    assert large.starters == 5 and len(trial_accounts_with_hits(large)) == 5
    assert large.measured_hits == small.measured_hits == 3_000
    assert Workload(accounts=20_000, hits=3_000, seed=2, warm=True, trial_share=0.01).build().starters == 100


def test_profile_summary_shares(tmp_path: Path) -> None:
    collapsed = tmp_path / "p.txt"
    collapsed.write_text("main (a.py:1);work (a.py:5) 3\nmain (a.py:1);idle (b.py:2) 1\n")
    summary = summarise_profile(collapsed)
    assert summary["own"][0] == ("work (a.py)", 0.75)
    assert ("main (a.py)", 1.0) in summary["inclusive"]
