"""The share stage's report row: each worker's share of the firehose, as read from its /metrics."""

from tools.bench.report import table


def test_the_share_row_names_each_workers_share_reads_and_cpu() -> None:
    share = {
        "records": 10_000, "hits": 9_000, "seconds": 2.0, "records_per_s": 5_000.0,
        "workers": [{"records_read": 4_600.0, "share": 0.46, "cpu_s": 3.2}, {"records_read": 5_400.0, "share": 0.54, "cpu_s": 3.9}],
    }  # fmt: skip
    lines = table({"label": "t", "machine": {"cpu": "cpu", "cores": 2}, "share": share}).splitlines()
    [row] = [line for line in lines if line.startswith("7 share")]
    assert "5,000 records/s" in row and "46% (4,600 read, 3 s CPU)" in row and "54% (5,400 read, 4 s CPU)" in row
