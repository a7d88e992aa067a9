"""The agents stage's report rows, and the setting it measures reaching Faust."""

from streams.app import create_app
from streams.settings import Settings
from tools.bench.command import options_from, register
from tools.bench.report import table


def test_each_stream_buffer_size_gets_a_row_with_its_rate_and_cpu() -> None:
    agents = {
        "accounts": 1_000, "hits": 1_000, "billing_events": 1_500,
        "runs": [
            {"stream_buffer_records": 1024, "records": 2_500, "seconds": 2.0, "records_per_s": 1_250.0, "cpu_us_per_record": 700.0, "cpu_share": 0.44},
            {"stream_buffer_records": 4096, "records": 2_500, "seconds": 2.5, "records_per_s": 1_000.0, "cpu_us_per_record": 810.0, "cpu_share": 0.81},
        ],
    }  # fmt: skip
    lines = table({"label": "t", "machine": {"cpu": "cpu", "cores": 2}, "agents": agents}).splitlines()
    rows = [line for line in lines if line.startswith("9 agents")]
    assert len(rows) == 2
    assert "stream buffer 1024" in rows[0] and "1,250 records/s" in rows[0] and "700 µs CPU a record, 44% of a core" in rows[0]
    assert "stream buffer 4096" in rows[1] and "1,000 records/s" in rows[1]


def test_the_stage_compares_the_sizes_asked_for() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--stages", "agents", "--agents-stream-buffers", "512,2k", "--agents-accounts", "5k"])
    plan = options_from(args).agents
    assert plan.stream_buffers == (512, 2_000) and plan.accounts == 5_000


def test_faust_buffers_as_many_records_as_the_setting_says(tmp_path) -> None:
    detector = create_app(Settings(stream_buffer_records=1234, state_dir=tmp_path), "localhost:9092")
    assert detector.app.conf.stream_buffer_maxsize == 1234
