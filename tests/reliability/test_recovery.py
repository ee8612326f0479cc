"""Recovery paths a user meets after a failure: one line and a command that works.

- `make study`'s preflight (ipg.workflow.preflight): a missing --configfile, or a target written after it,
  is one line; a lock left by `kill -9` is removed when no Snakemake runs in the folder, kept
  while one does.
- the model-rebuild hint names a command for the study's own results_dir and config.
- Ctrl-C in `ipg sample`: one line, exit 130, no output file; non-finite steered logits in
  `ipg steer`: one line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipg.errors import IPGError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def preflight(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ipg.workflow.preflight", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=60)


def test_missing_configfile_is_one_line(tmp_path: Path) -> None:
    result = preflight(tmp_path, "--configfile", "missing.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "--configfile missing.yaml: no such file" in result.stderr


def test_target_after_configfile_is_one_line_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "test.yaml").write_text("seed: 0\n")
    result = preflight(tmp_path, "--configfile", "test.yaml", "results/models/tiny-qwen2")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--configfile results/models/tiny-qwen2: not a .yaml/.json config" in result.stderr
    assert "put targets before --configfile" in result.stderr
    # a target before --configfile, or after `--`-style options, is fine
    assert preflight(tmp_path, "results/models/tiny-qwen2", "--configfile", "test.yaml").returncode == 0
    assert preflight(tmp_path, "--configfile", "test.yaml", "--cores", "1", "all").returncode == 0


def _lock(folder: Path) -> Path:
    locks = folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    lock = locks / "0.input.lock"
    lock.write_text(str(folder / "results/models/tiny-qwen2") + "\n")
    return lock


def test_stale_lock_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    lock = _lock(tmp_path)
    result = preflight(tmp_path)
    assert result.returncode == 0, result.stderr
    assert not lock.exists()
    assert "removed the lock of an interrupted Snakemake run" in result.stderr


def test_lock_of_a_live_snakemake_is_kept(tmp_path: Path) -> None:
    lock = _lock(tmp_path)
    fake = tmp_path / "bin" / "snakemake"  # a process whose argv[1] is .../snakemake, like the real one
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(fake)], cwd=tmp_path)
    try:
        time.sleep(0.2)
        result = preflight(tmp_path)
        assert result.returncode == 0, result.stderr
        assert lock.exists() and result.stderr == ""
    finally:
        proc.kill()
        proc.wait()
    assert preflight(tmp_path).returncode == 0 and not lock.exists()  # now stale


def test_rebuild_hint_names_the_study_of_the_results_dir(tmp_path: Path, monkeypatch) -> None:
    from ipg.models.load import check_model_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("seed: 0\n")  # results_dir: the default
    (tmp_path / "config" / "other.yaml").write_text("results_dir: out\n")
    for folder, again in (("results/models/m", "make study"),
                          ("out/models/m", "snakemake --cores all --configfile config/other.yaml"),
                          ("elsewhere/models/m",
                           "make study, or snakemake --cores all --configfile <the config that built it>")):
        (tmp_path / folder).mkdir(parents=True)
        with pytest.raises(IPGError) as info:
            check_model_dir(folder)
        assert str(info.value).endswith(f"rebuild it: rm -rf {folder}, then rerun the study ({again})")
        assert "\n" not in str(info.value)


def test_ctrl_c_in_sample_is_one_line_exit_130_and_writes_nothing(tiny_qwen2_dir, tmp_path, monkeypatch,
                                                                 capsys) -> None:
    import ipg.study.trajectories
    from ipg.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ipg.study.trajectories, "trajectories_for_prompts", interrupted)
    out = tmp_path / "traj.parquet"
    code = main(["sample", "--model", str(tiny_qwen2_dir), "--task", "chain_sum", "-n", "2", "-G", "2",
                 "--max-new-tokens", "4", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip().splitlines()[-1] == "ipg: interrupted (sample); no output file is left half-written"
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_non_finite_steered_logits_are_one_line(tiny_qwen2_dir) -> None:
    import torch

    from ipg.cli import _check_finite_logits
    from ipg.models.load import load_model

    model, tokenizer = load_model(tiny_qwen2_dir)
    _check_finite_logits(model, tokenizer, "1+1=", 2.0)  # finite: no error
    layer = model.model.layers[0]
    handle = layer.register_forward_hook(lambda m, a, out: (out[0] * float("inf"),) + tuple(out[1:])
                                         if isinstance(out, tuple) else out * float("inf"))
    try:
        with pytest.raises(IPGError, match=r"gamma = 1000 makes the model's logits non-finite .*smaller --gamma"):
            _check_finite_logits(model, tokenizer, "1+1=", 1000.0)
    finally:
        handle.remove()
    assert torch.isfinite(model(input_ids=tokenizer("1+1=", return_tensors="pt").input_ids).logits).all()
