"""The sensitivity stage: variants of IPG attributed on the same trajectories, compared with
the base run (Spearman, top-k Jaccard, completeness residual, wall time)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ipg.errors import IPGError
from ipg.core.sampling import SamplingConfig
from ipg.study.sensitivity import (
    SUMMARY_COLUMNS, compare, first_samples, run_variant, summarize_sensitivity, write_summary,
)
from ipg.config.jobs import VariantSpec

TASK = "chain_sum"


def scores(values, prefix="L0.mlp.n") -> pd.DataFrame:
    return pd.DataFrame({"unit": [f"{prefix}{i}" for i in range(len(values))], "layer": 0,
                         "index": range(len(values)), "score": values, "granularity": "neurons"})


def test_first_samples_keeps_the_lowest_sample_ids_of_each_prompt() -> None:
    table = pd.DataFrame({"prompt_id": ["a", "b", "a", "b", "a", "b"],
                          "sample_id": [2, 0, 0, 1, 1, 2], "x": range(6)})
    got = first_samples(table, 2)
    assert sorted(zip(got["prompt_id"], got["sample_id"])) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert got["x"].tolist() == [1, 2, 3, 4]  # the table's order is kept
    assert len(first_samples(table, 5)) == 6
    with pytest.raises(IPGError, match="max_samples_per_prompt"):
        first_samples(table, 0)


def test_variant_spec_and_the_loo_bound() -> None:
    spec = VariantSpec.parse({"m": 8, "max_samples_per_prompt": 2})
    assert (spec.method.kind, spec.method.config.m, spec.max_samples_per_prompt) == ("ipg", 8, 2)
    assert spec.method.params == {"m": 8} and spec.params == {"m": 8, "max_samples_per_prompt": 2}
    assert VariantSpec.parse({"m": 8}).max_samples_per_prompt is None
    assert VariantSpec.parse({"max_samples_per_prompt": 1, "advantage": "raw"}).max_samples_per_prompt == 1
    for advantage in ("loo", "grpo"):
        with pytest.raises(IPGError, match=f"{advantage} advantage: it needs >= 2") as info:
            VariantSpec.parse({"max_samples_per_prompt": 1, "advantage": advantage})
        assert "\n" not in str(info.value)
    with pytest.raises(IPGError, match="must be an integer >= 1"):
        VariantSpec.parse({"max_samples_per_prompt": 0, "advantage": "raw"})


def test_compare_by_hand() -> None:
    base = scores([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    same_order = scores([50.0, 9.0, 8.0, 1.0, 0.5, -3.0])  # monotone transform: rho = 1
    assert compare(base, same_order, 2) == pytest.approx(
        {"spearman": 1.0, "jaccard_topk": 1.0, "chance_jaccard": compare(base, base, 2)["chance_jaccard"]})
    reversed_ = scores([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    out = compare(base, reversed_, 3)  # top-3 {0,1,2} vs {3,4,5}: disjoint
    assert out["spearman"] == pytest.approx(-1.0) and out["jaccard_topk"] == 0.0
    one_swap = scores([5.0, 4.0, 2.0, 3.0, 1.0, 0.0])  # d = (0,0,1,1,0,0): 1 - 6*2/(6*35)
    out = compare(base, one_swap, 3)
    assert out["spearman"] == pytest.approx(1 - 12 / 210)
    assert out["jaccard_topk"] == pytest.approx(2 / 4)  # {0,1,2} vs {0,1,3}
    assert np.isnan(compare(base, scores([0.0] * 6), 2)["spearman"])  # constant: undefined
    with pytest.raises(IPGError, match="different units"):
        compare(base, scores([1.0] * 6, prefix="L1.mlp.n"), 2)
    with pytest.raises(IPGError, match="k=7 is larger than the 6 units"):
        compare(base, base, 7)


@pytest.fixture(scope="module")
def trajectories(tiny_qwen2_dir, tmp_path_factory):
    from ipg.models.load import load_model
    from ipg.study.trajectories import trajectories_for_prompts, write_table_atomic

    model, tokenizer = load_model(str(tiny_qwen2_dir))
    prompts = pd.DataFrame({"prompt_id": ["p0", "p1", "p2"], "answer": ["7", "8", "5"],
                            "prompt": ["What is 3 + 4?", "What is 9 - 1?", "What is 2 + 2 + 1?"]})
    frame, _ = trajectories_for_prompts(model, tokenizer, prompts, TASK, True, 4,
                                        SamplingConfig(max_new_tokens=8, seed=3), progress=False)
    # a random model never stops early: give the samples of each prompt different rewards
    frame["reward_length"] = [float((3 * i) % 5) for i in range(len(frame))]
    path = tmp_path_factory.mktemp("traj") / "0.parquet"
    write_table_atomic(frame, path)
    return path


def test_variants_end_to_end(tiny_qwen2_dir, trajectories, tmp_path) -> None:
    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.attribution.table import read_attribution
    from ipg.models.load import load_model
    from ipg.study.trajectories import read_trajectories

    base = {"reward": "length", "m": 8, "max_residual": None}
    variants = {"base": base, "m4": {**base, "m": 4}, "G2": {**base, "max_samples_per_prompt": 2}}
    runs = {}
    for name, params in variants.items():
        pq, js = tmp_path / f"{name}.parquet", tmp_path / f"{name}.json"
        metrics = run_variant(str(tiny_qwen2_dir), str(trajectories), "neurons",
                              VariantSpec.parse(params), pq, js, name=name, progress=False)
        assert metrics["variant_params"] == params
        runs[name] = (pq, js)
    # G2 is IPG on the first two samples of each prompt, nothing else
    model, _ = load_model(str(tiny_qwen2_dir))
    two = first_samples(read_trajectories(trajectories), 2)
    want = attribute(model, two, "neurons", IPGConfig(reward="length", m=8, max_residual=None),
                     progress=False)
    got = read_attribution(*runs["G2"])
    assert np.allclose(got.scores["score"], want.scores["score"], atol=1e-6)
    assert got.metrics["samples_per_prompt"] == 2 and got.metrics["n_trajectories"] == 6

    summary = write_summary(runs, 8, tmp_path / "out" / "s.csv", tmp_path / "out" / "s.json")
    assert list(summary.columns) == SUMMARY_COLUMNS and summary["variant"].tolist() == list(runs)
    back = pd.read_csv(tmp_path / "out" / "s.csv")
    assert back["variant"].tolist() == list(runs)
    row = summary.set_index("variant")
    assert row.loc["base", "spearman"] == pytest.approx(1.0) and row.loc["base", "jaccard_topk"] == 1.0
    assert json.loads(row.loc["m4", "params"]) == {"m": 4}
    assert json.loads(row.loc["G2", "params"]) == {"max_samples_per_prompt": 2}
    assert row.loc["G2", "samples_per_prompt"] == 2 and row.loc["base", "samples_per_prompt"] == 4
    for name, (pq, js) in runs.items():  # recomputed from the written tables
        a, b = read_attribution(*runs["base"]).scores, read_attribution(pq, js).scores
        from scipy.stats import spearmanr

        rho = spearmanr(a["score"], b.set_index("unit").loc[a["unit"], "score"]).statistic
        assert row.loc[name, "spearman"] == pytest.approx(rho)
        assert row.loc[name, "completeness_residual"] == pytest.approx(
            json.loads(js.read_text())["completeness_residual"])
        assert row.loc[name, "wall_seconds"] > 0
    assert json.loads((tmp_path / "out" / "s.json").read_text())["variants"][0]["variant"] == "base"
    with pytest.raises(IPGError, match="lack the base run"):
        summarize_sensitivity({"m4": runs["m4"]}, 8)
    with pytest.raises(IPGError, match="unknown IPG config key 'mm'"):
        VariantSpec.parse({"mm": 3})


@pytest.mark.parametrize("noise, spearman_ok", [(0.0, lambda r: r == pytest.approx(1.0)),
                                                (1.0, lambda r: abs(r) < 0.15)])
def test_summary_carries_the_base_retest_level(tmp_path, noise, spearman_ok) -> None:
    """Identical prompts: the base's halves agree perfectly (retest 1); pure noise: ~0."""
    from ipg.attribution.table import make_attribution, write_attribution
    from ipg.study.statistics import expected_random_jaccard

    rng = np.random.default_rng(0)
    n_units = 300
    signal = rng.normal(size=n_units) * (1.0 - noise)
    runs = {}
    for name in ("base", "other"):
        pp = signal + noise * rng.normal(size=(16, n_units))
        att = make_attribution([f"L0.mlp.n{i}" for i in range(n_units)], [0] * n_units,
                               range(n_units), pp, [f"p{i}" for i in range(16)], "neurons", "ipg",
                               {"variant_params": {}})
        runs[name] = (tmp_path / f"{name}.parquet", tmp_path / f"{name}.json")
        write_attribution(att, *runs[name])
    row = summarize_sensitivity(runs, 30).iloc[0]
    assert spearman_ok(row["retest_spearman_half"])
    if noise == 0.0:
        assert row["retest_jaccard_half"] == 1.0 and row["retest_spearman_full_sb"] == pytest.approx(1.0)
    else:
        assert abs(row["retest_jaccard_half"] - expected_random_jaccard(n_units, 30, 30)) < 0.05
