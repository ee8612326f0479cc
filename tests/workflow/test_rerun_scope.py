"""Rerun scope on a finished test study: a config edit reruns exactly the jobs it changes.

Dry runs (`-n`) with an edited copy of config/test.yaml against the session's finished study
(tests/workflow/conftest.py). Expected jobs are computed from the config, so the tests follow
config/test.yaml as it grows.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ipg.config.study import (
    IPG_KINDS, attribution_targets, method_params, steering_targets, transfer_targets,
    validate_config,
)

pytestmark = pytest.mark.workflow

ATTRIBUTING = re.compile(r"^Attributing (\S+) on (\S+): (\S+) by (\S+)$")
STEERING = re.compile(r"^Steering (\S+) on (\S+): (\S+) selected by (\S+)$")


def dry_run_edited(finished_study, tmp_path: Path, edit, run_snakemake) -> str:
    workdir, config = finished_study
    cfg = yaml.safe_load(config.read_text())
    edit(cfg)
    edited = tmp_path / "edited.yaml"  # never written into the shared study
    edited.write_text(yaml.safe_dump(cfg))
    result = run_snakemake(workdir, edited, "-n")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    return out


def planned(messages: list[str], pattern: re.Pattern) -> set[tuple[str, ...]]:
    return {m.groups() for m in map(pattern.match, messages) if m}


def test_changing_a_steering_gamma_reruns_only_the_evaluations(
        finished_study, tmp_path, run_snakemake, planned_jobs, planned_messages):
    cfg = validate_config(yaml.safe_load(finished_study[1].read_text()))
    assert steering_targets(cfg), "config/test.yaml steers nothing"

    def edit(c):
        c["steering"]["gammas"] = [*c["steering"]["gammas"], 3.0]

    out = dry_run_edited(finished_study, tmp_path, edit, run_snakemake)
    expected = {"evaluate_steering": len(steering_targets(cfg)), "ingest_mlflow": 1, "report": 1, "all": 1}
    if transfer_targets(cfg):
        expected["evaluate_transfer"] = len(transfer_targets(cfg))
    assert planned_jobs(out) == expected, out[-3000:]
    assert planned(planned_messages(out), STEERING) == set(steering_targets(cfg))
    assert "Params have changed" in out and "'gammas'" in out


@pytest.mark.parametrize("steered", [True, False], ids=["steered-method", "unsteered-method"])
def test_changing_m_of_one_ipg_method_reruns_only_its_attributions(
        steered, finished_study, tmp_path, run_snakemake, planned_jobs, planned_messages):
    cfg = validate_config(yaml.safe_load(finished_study[1].read_text()))
    steered_names = {meth for *_, meth in steering_targets(cfg)}
    candidates = [name for name, p in cfg["attribution"]["methods"].items()
                  if p["kind"] in IPG_KINDS and (name in steered_names) == steered
                  and any(meth == name for *_, meth in attribution_targets(cfg))]
    if not candidates:
        pytest.skip(f"config/test.yaml has no {'steered' if steered else 'unsteered'} IPG method")
    method = candidates[0]
    old_m = cfg["attribution"]["methods"][method].get("m", 32)

    def edit(c):
        c["attribution"]["methods"][method]["m"] = max(2, old_m // 2)

    out = dry_run_edited(finished_study, tmp_path, edit, run_snakemake)
    edited = yaml.safe_load(finished_study[1].read_text())
    edit(edited)
    edited = validate_config(edited)
    # the attributions whose parameters change (a study entry's own m would shadow the edit)
    attributions = {(mod, task, gran, meth) for mod, task, gran, meth in attribution_targets(cfg)
                    if method_params(cfg, mod, gran, meth) != method_params(edited, mod, gran, meth)}
    assert attributions and {t[3] for t in attributions} == {method}
    steerings = set(steering_targets(cfg)) & attributions
    transfers = [t for t in transfer_targets(cfg) if (t[0], *t[2:]) in attributions]
    expected = {"attribute": len(attributions), "ingest_mlflow": 1, "report": 1, "all": 1}
    if steerings:
        expected["evaluate_steering"] = len(steerings)
    if transfers:
        expected["evaluate_transfer"] = len(transfers)
    jobs = planned_jobs(out)
    assert jobs == expected, out[-3000:]  # no trajectories, no SAE, no other method
    messages = planned_messages(out)
    assert planned(messages, ATTRIBUTING) == attributions
    assert planned(messages, STEERING) == steerings
