"""`make test` on pytest-xdist workers: the tests that read an expensive session fixture
(ONE_WORKER_FIXTURES in tests/conftest.py) run on one worker, so the fixture is built once.

Checked end to end on a throw-away suite that uses the repo's tests/conftest.py: a stand-in
`finished_study` that logs every build, read by tests in two listed files, beside ordinary tests.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent / "conftest.py"

FIXTURE = '''
import os
import pytest

@pytest.fixture(scope="session")
def finished_study():
    with open(os.environ["XDIST_GROUP_LOG"], "a") as log:
        log.write(f"built {os.environ.get('PYTEST_XDIST_WORKER', 'main')}\\n")
    return "study"
'''

GROUP_TESTS = '''
import os

def log(name):
    with open(os.environ["XDIST_GROUP_LOG"], "a") as out:
        out.write(f"ran {os.environ.get('PYTEST_XDIST_WORKER', 'main')} {name}\\n")
''' + "".join(f"\ndef test_{i}(finished_study):\n    log('{i}')\n" for i in range(3))

OTHER_TESTS = "".join(f"\ndef test_other_{i}():\n    pass\n" for i in range(8))


def make_suite(root: Path, group_files: tuple[str, ...]) -> None:
    (root / "tests" / "workflow").mkdir(parents=True)
    shutil.copy(CONFTEST, root / "tests" / "conftest.py")
    (root / "tests" / "workflow" / "conftest.py").write_text(FIXTURE)
    for name in group_files:
        (root / "tests" / "workflow" / name).write_text(GROUP_TESTS)
    (root / "tests" / "test_other.py").write_text(OTHER_TESTS)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider --import-mode=importlib\n")


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDIST_GROUP_LOG": str(root / "log.txt")}
    env.pop("PYTEST_XDIST_WORKER", None)  # this test may itself run on a worker
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_tests_of_a_one_worker_fixture_share_one_worker_and_one_build(tmp_path):
    make_suite(tmp_path, ("test_workflow.py", "test_rerun_scope.py"))
    run = pytest_in(tmp_path, "-n", "2", "--dist", "loadgroup")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "14 passed" in run.stdout, run.stdout[-2000:]
    lines = [line.split() for line in (tmp_path / "log.txt").read_text().splitlines()]
    builds = [words[1] for words in lines if words[0] == "built"]
    ran_on = {words[1] for words in lines if words[0] == "ran"}
    assert len([w for w in lines if w[0] == "ran"]) == 6
    assert len(builds) == 1 and builds[0].startswith("gw"), lines  # built once, on a worker
    assert ran_on == set(builds), lines  # and every test that reads it ran there


def test_a_test_reading_the_fixture_from_an_unlisted_file_stops_collection(tmp_path):
    make_suite(tmp_path, ("test_workflow.py", "test_new_study_checks.py"))
    run = pytest_in(tmp_path)
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    error = [line for line in run.stderr.splitlines() if "ONE_WORKER_FIXTURES" in line]
    assert len(error) == 1 and "tests/workflow/test_new_study_checks.py" in error[0], run.stderr
    assert "add it there" in error[0]
    assert not (tmp_path / "log.txt").exists()  # nothing ran
