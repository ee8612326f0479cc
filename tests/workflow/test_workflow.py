"""The workflow end to end on the CI-sized config: runs, is idempotent, reruns only what changed."""
import json
import re

import pandas as pd
import pytest
import yaml

from ipg.workflow import layout as L

# finished_study, run_snakemake, planned_jobs: tests/workflow/conftest.py
pytestmark = pytest.mark.workflow


def test_study_produces_trajectories(finished_study):
    workdir, config = finished_study
    cfg = yaml.safe_load(config.read_text())
    G = cfg["sampling"]["samples_per_prompt"]
    pairs = [(e["model"], t) for e in cfg["study"] for t in e["tasks"]]
    assert len(pairs) >= 2
    for model, task in pairs:
        prepared = pd.read_parquet(workdir / f"data/prepared/{task}.parquet")
        assert set(prepared["split"]) == {"attribution", "heldout"}
        table = pd.read_parquet(workdir / f"results/trajectories/{model}/{task}/0.parquet")
        n_prompts = (prepared["split"] == "attribution").sum()
        assert len(table) == n_prompts * G
        assert table.groupby("prompt_id").size().eq(G).all()
        assert table["gen_ids"].map(len).le(cfg["sampling"]["max_new_tokens"]).all()
        metrics = json.loads((workdir / f"results/trajectories/{model}/{task}/0.json").read_text())
        assert metrics["n_trajectories"] == len(table)
        assert metrics["tokens_per_second"] > 0
        assert (workdir / f"logs/sample_trajectories/{model}/{task}/0.log").exists()


def test_study_produces_attributions_steering_and_report(finished_study):
    workdir, _ = finished_study
    tables = sorted((workdir / "results/attribution").rglob("*.parquet"))
    assert tables, "no attribution tables"
    for table in tables:
        metrics = json.loads(table.with_suffix(".json").read_text())
        assert metrics["n_prompts"] > 0
        if metrics.get("kind", "ipg") == "ipg" and "completeness_residual" in metrics:
            assert metrics["completeness_residual"] <= 0.05
    assert sorted((workdir / "results/intervention").rglob("*.csv"))
    # test.yaml is not the default study: its report goes under its results, never over reports/
    report = (workdir / L.reports_dir("results", "test") / "report.md").read_text()
    assert not (workdir / "reports" / "report.md").exists()
    assert "Findings" in report or "findings" in report


def test_finished_study_has_nothing_to_do(finished_study, run_snakemake):
    workdir, config = finished_study
    result = run_snakemake(workdir, config, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_task_reruns_only_that_task(finished_study, tmp_path, run_snakemake,
                                                 planned_jobs, planned_messages):
    workdir, config = finished_study
    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("data", {}).setdefault("task_params", {})["chain_sum"] = {
        "min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}
    edited = tmp_path / "edited.yaml"  # never written into the shared study
    edited.write_text(yaml.safe_dump(cfg))
    result = run_snakemake(workdir, edited, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    jobs = planned_jobs(out)
    assert jobs["prepare_task"] == 1 and jobs["sample_trajectories"] == 1, out[-3000:]
    assert "build_model" not in jobs and "init_tracking" not in jobs
    assert "data/prepared/chain_sum.parquet" in out
    # Other tasks rerun only through the SAE, which is trained on the model's first task
    # (chain_sum): their sae attributions and steering, nothing else.
    first_task = {e["model"]: e["tasks"][0] for e in cfg["study"]}
    assert first_task["tiny-qwen2"] == "chain_sum"
    others = [m for m in planned_messages(out)
              if (task := re.search(r"tiny-qwen2 on (\w+)", m)) and task[1] != "chain_sum"]
    assert others and all(": sae " in m for m in others), others
    assert not [m for m in planned_messages(out) if "organism" in m]
