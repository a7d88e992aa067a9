"""The alert rules of ops/prometheus/ under Prometheus's own promtool: valid, loaded by the
config, unit-tested on synthetic series (alerts.test.yml), on metrics the workers export, and
each one explained in the README."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.test_compose import exported_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "ops" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts.test.yml"
README = ROOT / "README.md"


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: run scripts/setup (it installs Debian's prometheus package)"
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def alerts() -> list[dict[str, str]]:
    return [rule for group in yaml.safe_load(RULES.read_text("utf-8"))["groups"] for rule in group["rules"]]


def test_the_rules_and_the_config_that_loads_them_are_valid() -> None:
    for args in (("check", "rules", RULES.name), ("check", "config", "prometheus.yml")):
        checked = promtool(*args)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in promtool("check", "config", "prometheus.yml").stdout


def test_each_alert_fires_on_its_condition_and_stays_quiet_otherwise() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    unit_tests = yaml.safe_load(RULE_TESTS.read_text("utf-8"))["tests"]
    covered = {check["alertname"] for test in unit_tests for check in test.get("alert_rule_test") or []}
    fired = {check["alertname"] for test in unit_tests for check in test.get("alert_rule_test") or [] if check["exp_alerts"]}
    names = {rule["alert"] for rule in alerts()}
    assert covered == names and fired == names, f"alerts without a unit test that fires: {sorted(names - fired)}"


# A rule made too lax or too strict: some unit test must notice.
BREAKS = [
    ("p99 objective 1 s", "> 0.1\n", "> 1\n"),
    ("p99 objective 10 ms", "> 0.1\n", "> 0.01\n"),
    ("lag without floor", "usage_detector_consumer_lag) > 1000", "usage_detector_consumer_lag) > 0"),
    ("lag steady", "[10m])) > 0", "[10m])) >= 0"),
    ("scrapes ignored", 'up{job="usage-detector"} == 0 or', 'up{job="usage-detector"} == 2 or'),
    ("readiness ignored", "usage_detector_ready == 0", "usage_detector_ready == 2"),
    ("not ready at once", "usage_detector_ready == 0\n        for: 5m", "usage_detector_ready == 0\n        for: 1m"),
    ("dead letters at any rate", "[5m])) > 1\n", "[5m])) > 0\n"),
    ("census never stale", "census_age_seconds) > 600", "census_age_seconds) > 6000"),
    ("census never taken ignored", "unless on (instance) usage_detector_census_age_seconds", "and on (instance) usage_detector_census_age_seconds"),
]


@pytest.mark.parametrize(("case", "old", "new"), BREAKS, ids=[case for case, _, _ in BREAKS])
def test_the_unit_tests_catch_a_broken_rule(case: str, old: str, new: str, tmp_path: Path) -> None:
    text = RULES.read_text("utf-8")
    assert text.count(old) == 1, f"the break {case!r} no longer applies to {RULES.name}"
    (tmp_path / RULES.name).write_text(text.replace(old, new), "utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    assert promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path).returncode != 0, case


def test_the_rules_query_only_metrics_the_workers_export() -> None:
    exported = set().union(*exported_metrics().values())
    used = {name for rule in alerts() for name in re.findall(r"\busage_detector_\w+", rule["expr"])}
    assert used and used <= exported, f"the rules query metrics no worker exports: {sorted(used - exported)}"


def test_each_alert_has_a_runbook_line_in_the_readme() -> None:
    readme = README.read_text("utf-8")
    section = readme[readme.index("### Alerts") :]
    for rule in alerts():
        assert rule["annotations"]["runbook"] == "README.md#alerts", rule["alert"]
        assert re.search(rf"^- `{rule['alert']}`", section, re.MULTILINE), f"no runbook line for {rule['alert']} under ### Alerts"
