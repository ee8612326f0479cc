"""run_ipg: the one call a Snakemake script makes (model folder + trajectory file -> files)."""
from __future__ import annotations

import json

import pytest

from ipg.attribution.run import run_ipg
from ipg.attribution.table import read_attribution
from ipg.errors import IPGError
from tiny_models import sample_table


def test_run_ipg_writes_table_and_metrics(tiny_qwen2_dir, tmp_path) -> None:
    from ipg.models.load import load_model

    model, _ = load_model(tiny_qwen2_dir)
    table = sample_table(model, n_prompts=2, G=3, max_new=4, seed=2)
    table = table.assign(reward_accuracy=[1.0, 0.0, 0.0] * 2, prompt="q", answer="a", text="t", pred="a")
    path = tmp_path / "traj.parquet"
    table.to_parquet(path)
    metrics = run_ipg(tiny_qwen2_dir, path, "heads", {"m": 16, "chunk": 16, "layers": [1]},
                      tmp_path / "out" / "ipg.parquet", tmp_path / "out" / "ipg.json", progress=False)
    att = read_attribution(tmp_path / "out" / "ipg.parquet", tmp_path / "out" / "ipg.json")
    assert att.scores["unit"].str.startswith("L1.attn.h").all() and len(att.prompt_ids) == 2
    assert metrics["completeness_residual"] < 0.05
    saved = json.loads((tmp_path / "out" / "ipg.json").read_text())
    assert saved["config"]["m"] == 16 and "versions" in saved
    with pytest.raises(IPGError, match="unknown IPG config key 'n_steps'"):
        run_ipg(tiny_qwen2_dir, path, "heads", {"n_steps": 3}, tmp_path / "x.parquet", tmp_path / "x.json")
