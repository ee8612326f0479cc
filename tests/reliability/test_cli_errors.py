"""The command line on bad input: a bad argument or a user error prints one line and exits 2;
`ipg check` reports each failing check (config, DVC remote, Snakemake profile) in one line and
exits 2, and every passing one as an `ok:` line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}


def ipg(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ipg", *argv], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=120)


@pytest.mark.parametrize("argv", [["frobnicate"], ["prepare"], ["prepare", "--task", "x", "--seed", "abc"],
                                  ["sample", "--bogus-flag"], ["check", "--bogus-flag"]])
def test_cli_bad_argument_exits_2_with_one_line(argv: list[str]) -> None:
    proc = ipg(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipg"), proc.stderr
    assert "error:" in lines[0] and "--help" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_user_error_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = ipg("prepare", "--task", "gsm9k", "--out", str(tmp_path / "x.parquet"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gsm9k" in lines[0] and "allowed" in lines[0], proc.stderr
    assert not (tmp_path / "x.parquet").exists()


# -- ipg check --------------------------------------------------------------------------------------

def _dvc_project(root: Path, url: str, name: str = "backup") -> Path:
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text(
        f"[core]\n    remote = {name}\n['remote \"{name}\"']\n    url = {url}\n")
    return root


def _profile(root: Path, name: str, executor: str | None) -> Path:
    folder = root / "profiles" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text((f"executor: {executor}\n" if executor else "") + "jobs: 4\n")
    return folder


def _config(root: Path, text: str) -> Path:
    path = root / "study.yaml"
    path.write_text(text)
    return path


GOOD_CONFIG = "study:\n  - model: tiny-qwen2\n    tasks: [chain_sum]\n"


def test_check_passes_on_a_good_setup(tmp_path: Path) -> None:
    project = _dvc_project(tmp_path / "proj", "../remote")
    (tmp_path / "proj" / "remote").mkdir()
    profile = _profile(tmp_path, "local", None)
    proc = ipg("check", "--configfile", str(_config(tmp_path, GOOD_CONFIG)), "--dvc-root",
               str(project), "--profile", str(profile))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("ok: ") for line in lines), proc.stdout
    assert str(tmp_path / "proj" / "remote") in lines[1] and "executor local" in lines[2]
    assert proc.stderr.strip() == ""


def test_check_names_an_uncreatable_dvc_remote_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    project = _dvc_project(tmp_path, "../a-file/remote")
    proc = ipg("check", "dvc", "--dvc-root", str(project))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    missing = tmp_path / "a-file" / "remote"  # relative URLs start at .dvc/, as in DVC
    assert len(lines) == 1 and lines[0].startswith("ipg: error: DVC remote 'backup'"), proc.stderr
    assert str(missing) in lines[0] and "cannot be created" in lines[0]
    assert "dvc remote modify backup url" in lines[0] and "Traceback" not in proc.stderr


def test_check_accepts_a_missing_remote_folder_dvc_will_create(tmp_path: Path) -> None:
    project = _dvc_project(tmp_path, "../not-yet")  # dvc push creates it (parent writable)
    proc = ipg("check", "dvc", "--dvc-root", str(project))
    assert proc.returncode == 0 and str(tmp_path / "not-yet") in proc.stdout, proc.stderr


def test_check_names_an_undefined_dvc_remote(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = s3store\n")
    proc = ipg("check", "dvc", "--dvc-root", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "'s3store' is not defined" in lines[0] and "dvc remote add -d s3store" in lines[0]


def test_check_names_a_missing_executor_plugin(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "lsf", "nosuchexec")
    proc = ipg("check", "profile", "--profile", str(profile))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "profile 'lsf'" in lines[0] and "'nosuchexec'" in lines[0]
    assert "pip install snakemake-executor-plugin-nosuchexec" in lines[0]


def test_check_names_the_config_file_and_the_bad_key(tmp_path: Path) -> None:
    config = _config(tmp_path, GOOD_CONFIG + "n_promtps: 3\n")
    proc = ipg("check", "config", "--configfile", str(config))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(config) in lines[0] and "'n_promtps'" in lines[0] and "allowed keys" in lines[0]


def test_check_reports_every_failure_not_just_the_first(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "blocker").write_text("a file where the remote's parent should be")
    proc = ipg("check", "--configfile", str(tmp_path / "missing.yaml"), "--dvc-root",
               str(_dvc_project(tmp_path / "proj", "../blocker/gone")), "--profile",
               str(_profile(tmp_path, "lsf", "nosuchexec")))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("ipg: error: ") for line in lines), proc.stderr
    assert "missing.yaml" in lines[0] and "'backup'" in lines[1] and "'nosuchexec'" in lines[2]


def test_check_rejects_an_unknown_check() -> None:
    proc = ipg("check", "dvcc")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ipg: error: unknown check(s) 'dvcc'; allowed: config, dvc, profile"


def test_check_passes_on_the_shipped_cluster_profiles() -> None:
    """The lock installs both executor plugins; the workflow's own profiles must pass."""
    for name, executor in (("slurm", "slurm"), ("kubernetes", "kubernetes"), ("default", None)):
        proc = ipg("check", "profile", "--profile", str(REPO / "profiles" / name))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().endswith(f"executor {executor or 'local (default)'}")


def test_make_study_checks_the_profile_before_snakemake() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nstudy:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert recipe[0].strip().startswith("$(BIN)/ipg check profile --profile")
    assert any("snakemake" in line for line in recipe[1:])


def test_stage_targets_name_a_missing_config_in_one_line(tmp_path: Path) -> None:
    """dvc.yaml's stages call `python -m ipg.workflow.targets`; a bad config is one line, not a traceback."""
    missing = tmp_path / "nope.yaml"
    proc = subprocess.run([sys.executable, "-m", "ipg.workflow.targets", "analysis", "--configfile", str(missing)],
                          capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("ipg.workflow.targets: error: ") and str(missing) in lines[0]
