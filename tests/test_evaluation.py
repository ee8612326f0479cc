"""Steering evaluation on a tiny random Qwen2 with the chain_sum task's text grader."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ipg.errors import IPGError
from ipg.study.steering import (
    deletion_curve, evaluate_steering, run_steering, run_unsteered, temperature_control, transfer,
)
from ipg.study.steering_summary import (
    ROW_COLUMNS, entropy_matched, jaccard_table, selected_sets, summarize,
)
from ipg.config.jobs import SteeringConfig
from ipg.core.sampling import SamplingConfig

TASK = "chain_sum"
CFG = SamplingConfig(temperature=1.0, max_new_tokens=8, prompts_per_batch=4)
LABELS = {"method": "test", "granularity": "neurons"}
PAIR = ["prompt_id", "seed"]


@pytest.fixture(scope="module")
def prompts() -> pd.DataFrame:
    qs = [("3 + 4", "7"), ("9 - 1", "8"), ("2 + 2 + 1", "5")]
    return pd.DataFrame({"prompt_id": [f"p{i}" for i in range(3)],
                         "prompt": [f"What is {q}?" for q, _ in qs], "answer": [a for _, a in qs]})


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    units = [(l, i) for l in (0, 1) for i in range(128)]  # TINY_CONFIG intermediate_size = 128
    return pd.DataFrame({"unit": [f"L{l}.mlp.n{i}" for l, i in units],
                         "layer": [l for l, _ in units], "index": [i for _, i in units],
                         "score": rng.normal(size=len(units)), "granularity": "neurons",
                         "method": "test"})


@pytest.fixture(scope="module")
def rows(tiny_qwen2, prompts, scores) -> pd.DataFrame:
    torch.set_num_threads(1)
    model, tokenizer = tiny_qwen2
    return evaluate_steering(model, tokenizer, TASK, prompts, scores, "neurons", ks=[2, 40],
                             gammas=[0.0, 1.0, 4.0], seeds=[0, 1], samples_per_prompt=2,
                             sampling=CFG, labels=LABELS)


def metrics_of(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(PAIR)[["accuracy", "length", "entropy", "truncated"]].sort_index()


def test_row_counts_and_columns(rows, prompts) -> None:
    assert list(rows.columns) == ROW_COLUMNS + list(LABELS)
    n_conditions = 3 * 2 * 3 + 1  # selections x ks x gammas + the baseline
    assert len(rows) == n_conditions * 2 * len(prompts)
    assert not rows.duplicated(["selection", "k", "gamma", "seed", "prompt_id"]).any()
    steered = rows[rows["selection"] != "none"]
    assert (steered["n_units"] == steered["k"]).all() and (rows["n_samples"] == 2).all()
    base = rows[rows["selection"] == "none"]
    assert (base["k"] == 0).all() and (base["gamma"] == 1.0).all() and len(base) == 6
    assert rows["accuracy"].between(0, 1).all() and rows["length"].between(0, 8).all()
    assert (rows["entropy"] > 0).all() and (rows["temperature"] == 1.0).all()


def test_gamma_one_equals_the_baseline_and_large_gamma_changes_it(rows) -> None:
    base = metrics_of(rows[rows["selection"] == "none"])
    for (sel, k), group in rows[rows["gamma"] == 1.0].groupby(["selection", "k"]):
        pd.testing.assert_frame_equal(metrics_of(group), base)  # same seeds -> same tokens
    big = rows[(rows["gamma"] == 4.0) & (rows["k"] == 40)]
    assert any(not metrics_of(g).equals(base) for _, g in big.groupby("selection"))


def test_selected_units_follow_the_scores(rows, scores) -> None:
    signed = scores.sort_values("score", ascending=False)["unit"].head(2).tolist()
    assert selected_sets({"a": scores}, 2)["a"] == signed


def test_summary_means_cis_and_paired_differences(rows) -> None:
    summary = summarize(rows, n_resamples=500)
    assert len(summary) == 19 and (summary["n_prompts"] == 3).all() and (summary["n_seeds"] == 2).all()
    for m in ("accuracy", "length", "entropy"):
        assert (summary[f"{m}_lo"] <= summary[m] + 1e-12).all()
        assert (summary[m] <= summary[f"{m}_hi"] + 1e-12).all()
    # means recomputed independently from the rows
    want = rows.groupby(["selection", "k", "gamma"])["length"].mean()
    got = summary.set_index(["selection", "k", "gamma"])["length"]
    assert np.allclose(got.loc[want.index], want)
    base = summary[summary["selection"] == "none"].iloc[0]
    ones = summary[summary["gamma"] == 1.0]
    assert (ones["d_length"] == 0).all() and (ones["d_entropy_lo"] == 0).all()
    row = summary[(summary["selection"] == "signed") & (summary["k"] == 40) & (summary["gamma"] == 4.0)].iloc[0]
    assert row["d_entropy"] == pytest.approx(row["entropy"] - base["entropy"])
    assert row["d_length_lo"] <= row["d_length"] <= row["d_length_hi"]


def test_deletion_curve_at_k0_is_the_baseline(tiny_qwen2, prompts, scores, rows) -> None:
    model, tokenizer = tiny_qwen2
    curve = deletion_curve(model, tokenizer, TASK, prompts, scores, "neurons", ks=[3],
                           selections=["signed", "bottom"], seeds=[0, 1], samples_per_prompt=2,
                           sampling=CFG, labels=LABELS)
    assert sorted(curve["k"].unique()) == [0, 3] and (curve["gamma"] == 0.0).all()
    base = metrics_of(rows[rows["selection"] == "none"])
    for _, group in curve[curve["k"] == 0].groupby("selection"):
        pd.testing.assert_frame_equal(metrics_of(group), base)


def test_temperature_control_sharpens(tiny_qwen2, prompts, rows) -> None:
    model, tokenizer = tiny_qwen2
    ctrl = temperature_control(model, tokenizer, TASK, prompts, [0.3, 1.0], seeds=[0, 1],
                               samples_per_prompt=2, sampling=CFG, labels=LABELS)
    assert list(ctrl.columns) == ROW_COLUMNS + list(LABELS) and len(ctrl) == 12
    assert (ctrl["selection"] == "temperature").all() and (ctrl["gamma"] == 1.0).all()
    cold, same = ctrl[ctrl["temperature"] == 0.3], ctrl[ctrl["temperature"] == 1.0]
    pd.testing.assert_frame_equal(metrics_of(same), metrics_of(rows[rows["selection"] == "none"]))
    assert cold["entropy"].mean() < same["entropy"].mean()
    with pytest.raises(IPGError, match="temperature"):
        temperature_control(model, tokenizer, TASK, prompts, [0.0], sampling=CFG)


def test_entropy_column_is_the_mean_next_token_entropy(tiny_qwen2) -> None:
    from ipg.core.sampling import sample_trajectories

    model, tokenizer = tiny_qwen2
    cfg = SamplingConfig(temperature=0.8, max_new_tokens=6, seed=2)
    trajs, _ = sample_trajectories(model, tokenizer, ["ab", "hello"], 2, cfg, progress=False)
    for t in trajs:  # teacher-forced recomputation: H = -sum p log p of softmax(logits / T)
        ids = torch.tensor([t.prompt_ids + t.gen_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(t.prompt_ids) - 1:-1].double() / 0.8
        p = torch.softmax(logits, -1)
        want = float(-(p * torch.log(p)).sum(-1).mean())
        assert t.entropy == pytest.approx(want, rel=1e-4)


def test_entropy_matched_interpolates_the_control() -> None:
    summary = pd.DataFrame({"selection": ["temperature", "temperature", "signed", "signed"],
                            "temperature": [0.5, 1.0, 1.0, 1.0], "entropy": [1.0, 3.0, 2.5, 4.0],
                            "accuracy": [0.6, 0.2, 0.5, 0.1]})
    out = entropy_matched(summary)
    assert out["matched_accuracy"].iloc[2] == pytest.approx(0.6 + 0.75 * (0.2 - 0.6))
    assert out["matched_temperature"].iloc[2] == pytest.approx(0.875)
    assert np.isnan(out["matched_accuracy"].iloc[3])  # outside the controls' entropy range


def test_jaccard_table_by_hand() -> None:
    table = jaccard_table({"gsm": ["a", "b", "c"], "math": ["b", "c", "d"], "aime": []}, n_units=10)
    row = table[(table["a"] == "gsm") & (table["b"] == "math")].iloc[0]
    assert (row["n_common"], row["jaccard"]) == (2, 0.5) and len(table) == 3
    assert 0 < row["chance"] < 0.5
    assert table[(table["a"] == "gsm") & (table["b"] == "aime")]["jaccard"].iloc[0] == 0.0


def test_transfer_checks_shapes(tiny_qwen2, prompts, scores) -> None:
    from ipg.models.tiny import tiny_random_model

    model, tokenizer = tiny_qwen2
    other, _ = tiny_random_model("qwen2", seed=1)
    out = transfer(model, other, tokenizer, TASK, prompts, scores, "neurons", ks=[2],
                   gammas=[2.0], selections=["signed"], samples_per_prompt=1, sampling=CFG)
    assert len(out) == 2 * len(prompts)
    narrow, _ = tiny_random_model("qwen2", seed=1, intermediate_size=64)
    with pytest.raises(IPGError, match="shape"):
        transfer(model, narrow, tokenizer, TASK, prompts, scores, "neurons", ks=[2],
                 selections=["magnitude"], sampling=CFG)


def test_bad_input_is_one_line_error(tiny_qwen2, prompts, scores) -> None:
    model, tokenizer = tiny_qwen2
    with pytest.raises(IPGError, match="lack"):
        evaluate_steering(model, tokenizer, TASK, prompts.drop(columns="answer"), scores)
    with pytest.raises(IPGError, match="granularity 'heads'"):
        evaluate_steering(model, tokenizer, TASK, prompts, scores, "heads")
    with pytest.raises(IPGError, match="gamma"):
        evaluate_steering(model, tokenizer, TASK, prompts, scores, ks=[1], gammas=[-1.0],
                          sampling=CFG, baseline_condition=False)


def write_inputs(tmp_path, prompts, scores, attribution_split: bool = False) -> None:
    """prep.parquet (the prompts as the held-out split, plus a disjoint attribution split if
    asked) and att.parquet / att.json (an IPG table of `scores`) under tmp_path."""
    from ipg.attribution.table import make_attribution, write_attribution
    from ipg.tasks.prepare import write_prepared

    prepared = prompts.assign(task=TASK, question=prompts["prompt"], split="heldout")
    if attribution_split:
        prepared = pd.concat([prepared, prepared.assign(prompt_id=["a0", "a1", "a2"],
                                                        split="attribution")])
    write_prepared(prepared[["prompt_id", "task", "question", "prompt", "answer", "split"]],
                   tmp_path / "prep.parquet")
    att = make_attribution(scores["unit"], scores["layer"], scores["index"],
                           scores["score"].to_numpy()[None, :], ["x"], "neurons", "ipg")
    write_attribution(att, tmp_path / "att.parquet", tmp_path / "att.json")


def test_run_steering_writes_rows_summary_and_config(tiny_qwen2_dir, tmp_path, prompts, scores) -> None:

    write_inputs(tmp_path, prompts, scores, attribution_split=True)
    params = dict(ks=[3], gammas=[2.0], selections=["signed"], seeds=[0], samples_per_prompt=2,
                  n_prompts=2, temperature=1.0, max_new_tokens=6, prompts_per_batch=2,
                  control_temperatures=[0.5])
    out = tmp_path / "steer" / "rows.parquet"
    summary = run_steering(str(tiny_qwen2_dir), str(tmp_path / "prep.parquet"),
                           str(tmp_path / "att.parquet"), TASK, True,
                           SteeringConfig.from_dict(params), str(out),
                           str(tmp_path / "steer" / "summary.csv"))
    rows = pd.read_parquet(out)
    assert len(rows) == 3 * 2 and set(rows["prompt_id"]) == {"p0", "p1"}  # held-out only
    assert set(rows["method"]) == {"ipg"} and set(rows["model"]) == {"tiny-qwen2"}
    assert len(pd.read_csv(tmp_path / "steer" / "summary.csv")) == len(summary) == 3
    config = json.loads((tmp_path / "steer" / "rows.json").read_text())
    assert config["params"]["gammas"] == [2.0] and config["sampler_calls"] == 3
    with pytest.raises(IPGError, match="unknown steering key.*'gama'"):
        SteeringConfig.from_dict({"gama": 2})
    with pytest.raises(IPGError, match="takes a SteeringConfig"):  # a dict is parsed before, once
        run_steering(str(tiny_qwen2_dir), "x", "y", TASK, True, params, "o", "s")


def test_unsteered_rows_sampled_once_equal_the_jobs_own(tiny_qwen2_dir, tmp_path, prompts,
                                                        scores) -> None:
    """run_unsteered's rows (baseline at each seed + temperature control) read by run_steering
    equal what the job samples itself, bitwise; with other settings the job samples them."""
    write_inputs(tmp_path, prompts, scores, attribution_split=True)
    params = dict(ks=[3], gammas=[2.0], selections=["signed"], seeds=[0, 1], samples_per_prompt=2,
                  n_prompts=2, temperature=1.0, max_new_tokens=6, prompts_per_batch=2,
                  control_temperatures=[0.5])
    cfg = SteeringConfig.from_dict(params)
    shared = tmp_path / "unsteered.parquet"
    run_unsteered(str(tiny_qwen2_dir), str(tmp_path / "prep.parquet"), TASK, True, cfg,
                  str(shared), str(tmp_path / "unsteered.json"))
    assert len(pd.read_parquet(shared)) == 2 * 2 * 2  # (baseline, T=0.5) x seeds x prompts

    def steer(name: str, settings: SteeringConfig, unsteered) -> pd.DataFrame:
        out = tmp_path / name / "rows.parquet"
        run_steering(str(tiny_qwen2_dir), str(tmp_path / "prep.parquet"),
                     str(tmp_path / "att.parquet"), TASK, True, settings, str(out),
                     str(tmp_path / name / "summary.csv"), unsteered_path=unsteered)
        return pd.read_parquet(out), json.loads(out.with_suffix(".json").read_text())

    own, own_meta = steer("own", cfg, None)
    reused, meta = steer("reused", cfg, str(shared))
    pd.testing.assert_frame_equal(own, reused)
    assert meta["unsteered_calls_reused"] == 4  # 2 seeds x (T=1, T=0.5)
    assert meta["sampler_calls"] == own_meta["sampler_calls"] - 4 == 2
    other = SteeringConfig.from_dict({**params, "max_new_tokens": 5})  # not what was shared
    _, meta = steer("other", other, str(shared))
    assert meta["unsteered_calls_reused"] == 0 and meta["sampler_calls"] == 6


def test_cli_evaluate(tiny_qwen2_dir, tmp_path, prompts, scores, capsys) -> None:
    from ipg.cli import main

    write_inputs(tmp_path, prompts, scores)
    argv = ["evaluate", "--model", str(tiny_qwen2_dir), "--task", TASK, "--attribution",
            str(tmp_path / "att.parquet"), "--prepared", str(tmp_path / "prep.parquet"),
            "--ks", "2", "--gammas", "3", "--selections", "signed", "-G", "1", "-n", "2",
            "--max-new-tokens", "4", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "signed/k=2/gamma=3" in out
    assert len(pd.read_parquet(tmp_path / "out" / "rows.parquet")) == 2 * 2


def test_sae_and_mean_mode_sets_at_gamma_one_equal_the_baseline(tiny_qwen2, prompts, rows) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "attribution"))
    from tiny_models import ToySAE

    from ipg.study.steering import evaluate_unit_sets

    model, tokenizer = tiny_qwen2
    base = metrics_of(rows[rows["selection"] == "none"])
    kw = dict(seeds=[0, 1], samples_per_prompt=2, sampling=CFG, baseline_condition=False)
    sae = ToySAE(64, 96, 8, layer=1)
    sae_rows = evaluate_unit_sets(model, tokenizer, TASK, prompts, {"latents": ["sae.L1.f3", "sae.L1.f50"]},
                                  [1.0, 8.0], sae=sae, **kw)
    pd.testing.assert_frame_equal(metrics_of(sae_rows[sae_rows["gamma"] == 1.0]), base)
    assert set(sae_rows["condition"]) == {"latents/k=2/gamma=1", "latents/k=2/gamma=8"}
    means = {"L0.mlp.n4": 0.5, "L1.mlp.n9": -1.0}
    mean_rows = evaluate_unit_sets(model, tokenizer, TASK, prompts, {"m": list(means)}, [1.0],
                                   mode="mean", means=means, **kw)
    pd.testing.assert_frame_equal(metrics_of(mean_rows), base)
    assert (mean_rows["mode"] == "mean").all()


def test_runner_resumed_after_kill_gives_identical_rows(tiny_qwen2, prompts, scores, tmp_path) -> None:
    """One chunk per condition x seed (ipg.core.checkpoint): killed after the second sampler call
    and rerun, the rows equal an uninterrupted run's, and the saved calls are not resampled."""
    from ipg.core.checkpoint import ChunkStore
    from ipg.study.steering import _Runner

    class Killed(Exception):
        pass

    model, tokenizer = tiny_qwen2
    kw = dict(ks=[2], gammas=[0.0, 4.0], seeds=[0, 1], samples_per_prompt=2, sampling=CFG,
              labels=LABELS, selections=["signed"])

    def runner(store):
        return _Runner(model, tokenizer, TASK, prompts, False, 2, CFG, None, "scale", None,
                       False, store)

    reference = evaluate_steering(model, tokenizer, TASK, prompts, scores, "neurons", **kw)
    saved: list[str] = []

    def kill(name: str) -> None:
        saved.append(name)
        if len(saved) == 2:
            raise Killed(name)

    with pytest.raises(Killed):
        evaluate_steering(model, tokenizer, TASK, prompts, scores, "neurons",
                          _runner=runner(ChunkStore(tmp_path / "s", "k", after_save=kill)), **kw)
    store = ChunkStore(tmp_path / "s", "k")
    resumed = evaluate_steering(model, tokenizer, TASK, prompts, scores, "neurons",
                                _runner=runner(store), **kw)
    assert store.resumed == 2 and len(set(saved)) == 2
    pd.testing.assert_frame_equal(resumed, reference, check_exact=True)


def test_k_larger_than_the_granularity_is_one_line_error(tiny_qwen2, prompts, scores) -> None:
    model, tokenizer = tiny_qwen2
    heads = pd.DataFrame({"unit": [f"L{l}.attn.h{h}" for l in (0, 1) for h in range(4)],
                          "layer": [l for l in (0, 1) for _ in range(4)],
                          "index": [h for _ in (0, 1) for h in range(4)],
                          "score": np.arange(8.0), "granularity": "heads"})
    with pytest.raises(IPGError, match=r"k=9 is larger than the 8 units .*\(heads\); lower k "
                                       r"\(steering\.ks\) to at most 8 for heads") as info:
        evaluate_steering(model, tokenizer, TASK, prompts, heads, "heads", ks=[9], sampling=CFG)
    assert "\n" not in str(info.value)


def trajectory_table(model, tokenizer, prompts, G=3, seed=5) -> pd.DataFrame:
    from ipg.study.trajectories import trajectories_for_prompts

    frame, _ = trajectories_for_prompts(model, tokenizer, prompts, TASK, False, G,
                                        SamplingConfig(max_new_tokens=5, seed=seed), progress=False)
    return frame


def test_trajectory_means_average_every_real_position(tiny_qwen2, prompts) -> None:
    """The m of mean ablation: the mean over every real (prompt + generated) position of every
    trajectory, recomputed here one unpadded trajectory at a time with plain forward hooks."""
    from ipg.core.intervention import trajectory_means

    model, tokenizer = tiny_qwen2
    table = trajectory_table(model, tokenizer, prompts)
    assert table.groupby("prompt_id").size().eq(3).all()
    # ragged continuations (a random model never stops early): padding must be excluded
    table["gen_ids"] = [list(g)[: 1 + i % 5] for i, g in enumerate(table["gen_ids"])]
    got = trajectory_means(model, table, "neurons") | trajectory_means(model, table, "heads")
    assert len(got) == 2 * 128 + 2 * 4
    acts = {"n": [], "h": []}
    hooks = [model.model.layers[1].mlp.down_proj.register_forward_pre_hook(
                 lambda m, a: acts["n"].append(a[0][0])),
             model.model.layers[0].self_attn.o_proj.register_forward_pre_hook(
                 lambda m, a: acts["h"].append(a[0][0]))]
    try:
        with torch.no_grad():
            for p, g in zip(table["prompt_ids"], table["gen_ids"]):
                model(torch.tensor([list(p) + list(g)]))
    finally:
        for h in hooks:
            h.remove()
    n, h = torch.cat(acts["n"]).double(), torch.cat(acts["h"]).double()  # [positions, ...]
    head_dim = h.shape[-1] // 4
    assert torch.allclose(got["L1.mlp.n5"], n[:, 5].mean().reshape(1), atol=1e-6)
    assert torch.allclose(got["L1.mlp.n77"], n[:, 77].mean().reshape(1), atol=1e-6)
    assert torch.allclose(got["L0.attn.h2"], h[:, 2 * head_dim:3 * head_dim].mean(0), atol=1e-6)


@pytest.mark.parametrize("gran", ["neurons", "heads", "layers"])
def test_mean_ablation_at_the_activations_leaves_the_output_unchanged(tiny_qwen2, gran) -> None:
    """A one-token input: the mean over its single position is its activation, so h <- m
    (gamma 0, mode mean) on every unit of the granularity changes nothing; the means of
    another token do change the output (the test can fail)."""
    from ipg.core.units import get_granularity
    from ipg.core.intervention import steer, trajectory_means

    model, _ = tiny_qwen2
    gran_ = get_granularity(gran, model)
    units = [u for l in gran_.available_layers() for u in gran_.unit_ids([l])]

    def one_token(tok):
        return pd.DataFrame({"prompt_id": ["x"], "sample_id": [0], "prompt_ids": [[tok]],
                             "gen_ids": [[]]})

    def logits(tok):
        with torch.no_grad():  # the shape trajectory_means runs: [tok, pad], position 1 masked
            return model(input_ids=torch.tensor([[tok, 0]]),
                         attention_mask=torch.tensor([[1, 0]])).logits[:, 0]

    plain = logits(7)
    with steer(model, units, 0.0, mode="mean", means=trajectory_means(model, one_token(7), gran)):
        assert torch.equal(logits(7), plain)
    with steer(model, units, 0.0, mode="mean", means=trajectory_means(model, one_token(30), gran)):
        assert not torch.allclose(logits(7), plain, atol=1e-3)


def test_run_steering_deletion_and_mean_ablation(tiny_qwen2, tiny_qwen2_dir, tmp_path, prompts,
                                                 scores) -> None:
    from ipg.models.load import load_model
    from ipg.study.trajectories import write_table_atomic

    write_inputs(tmp_path, prompts, scores)
    model, tokenizer = load_model(str(tiny_qwen2_dir))
    write_table_atomic(trajectory_table(model, tokenizer, prompts), tmp_path / "traj.parquet")
    params = dict(ks=[3], gammas=[0.0, 2.0], selections=["signed"], seeds=[0], samples_per_prompt=2,
                  n_prompts=3, temperature=1.0, max_new_tokens=6, prompts_per_batch=4,
                  control_temperatures=[0.5], deletion_ks=[3, 40], mean_ablation=True)
    params = SteeringConfig.from_dict(params)
    args = (str(tiny_qwen2_dir), str(tmp_path / "prep.parquet"), str(tmp_path / "att.parquet"),
            TASK, True)
    with pytest.raises(IPGError, match="trajectories_path"):
        run_steering(*args, params, str(tmp_path / "x.parquet"), str(tmp_path / "x.csv"))
    out = tmp_path / "steer" / "rows.parquet"
    summary = run_steering(*args, params, str(out), str(tmp_path / "steer" / "s.csv"),
                           trajectories_path=str(tmp_path / "traj.parquet"))
    rows = pd.read_parquet(out)
    by = rows.groupby("selection")["k"].apply(lambda k: sorted(set(k))).to_dict()
    assert by == {"none": [0], "signed": [3], "deletion": [0, 3, 40], "mean_ablation": [3],
                  "temperature": [0]}
    assert (rows.loc[rows["selection"] == "deletion", "gamma"] == 0).all()
    assert (rows.loc[rows["selection"] == "mean_ablation", "mode"] == "mean").all()
    assert (rows.loc[rows["selection"] != "mean_ablation", "mode"] == "scale").all()
    # the curve reuses the grid's samples: k=3 is the grid's signed k=3 at gamma 0, k=0 the baseline
    deletion = rows[rows["selection"] == "deletion"]
    grid0 = rows[(rows["selection"] == "signed") & (rows["gamma"] == 0)]
    pd.testing.assert_frame_equal(metrics_of(deletion[deletion["k"] == 3]), metrics_of(grid0))
    pd.testing.assert_frame_equal(metrics_of(deletion[deletion["k"] == 0]),
                                  metrics_of(rows[rows["selection"] == "none"]))
    # baseline + signed k3 x 2 gammas + deletion k40 + mean ablation k3 + control: 6 calls, not 9
    config = json.loads((tmp_path / "steer" / "rows.json").read_text())
    assert config["sampler_calls"] == 6 and config["params"]["trajectories"].endswith("traj.parquet")
    # the summary keeps the extra conditions apart: one row each, paired with the baseline
    assert set(summary["condition"]) >= {"deletion/k=0", "deletion/k=40", "mean_ablation/k=3"}
    assert summary["condition"].is_unique and len(summary) == len(rows.groupby("condition"))
    assert summary.loc[summary["condition"] == "deletion/k=0", "d_accuracy"].iloc[0] == 0
    # findings-style lookups on the grid's selections see no extra rows
    assert len(summary[(summary["selection"] == "signed") & (summary["gamma"] == 0)]) == 1


def test_run_steering_bootstraps_prompts_and_seeds_with_several_seeds(tiny_qwen2_dir, tmp_path,
                                                                      prompts, scores) -> None:
    """With >= 2 sampling seeds the CIs come from the hierarchical bootstrap (prompts, then
    seeds within each prompt), not from prompts alone."""
    from ipg.study.steering_summary import summarize

    write_inputs(tmp_path, prompts, scores)
    params = dict(ks=[3], gammas=[0.0], selections=["signed"], seeds=[0, 1], samples_per_prompt=2,
                  n_prompts=3, temperature=1.0, max_new_tokens=6, prompts_per_batch=3)
    params = SteeringConfig.from_dict(params)
    out = tmp_path / "rows.parquet"
    summary = run_steering(str(tiny_qwen2_dir), str(tmp_path / "prep.parquet"),
                           str(tmp_path / "att.parquet"), TASK, True, params, str(out),
                           str(tmp_path / "summary.csv"))
    rows = pd.read_parquet(out)
    hier = entropy_matched(summarize(rows, scheme="hierarchical"))
    flat = entropy_matched(summarize(rows, scheme="prompts"))
    assert (summary["n_seeds"] == 2).all()
    cols = ["entropy_lo", "entropy_hi"]  # lengths all hit the cap here; entropies vary
    pd.testing.assert_frame_equal(summary[cols].reset_index(drop=True), hier[cols].reset_index(drop=True))
    assert not np.allclose(summary[cols].to_numpy(), flat[cols].to_numpy(), equal_nan=True)
