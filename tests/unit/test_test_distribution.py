"""The suite's spread over processes (tests/conftest.py, scripts/test's `--dist loadgroup`): tests
sharing a module's started workers run on one process, so those start once. It broke silently
twice (the marks added after xdist read them; pytest 9.2 ignoring xdist's group suffix)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SHARED_MODULE = '''
import os
import pytest

@pytest.fixture(scope="module")
def started():
    return os.getpid()

@pytest.mark.parametrize("n", range(6))
def test_shares(started, n):
    with open(os.environ["PIDS_FILE"], "a") as pids:
        pids.write(f"{os.getpid()}\\n")
'''


def test_a_modules_tests_sharing_a_fixture_run_on_one_process(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_shared.py").write_text(SHARED_MODULE)
    pids = tmp_path / "pids"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "--no-loadscope-reorder", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path, env={"PIDS_FILE": str(pids), "PATH": ""}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran_on = pids.read_text().split()
    assert len(ran_on) == 6 and len(set(ran_on)) == 1, ran_on
