"""Fixtures: a SYNTHETIC study laid out like results/ (fabricated numbers, never real results).

`synthetic_study` writes, under tmp_path, the files the workflow writes: trajectories metrics,
attribution tables (+ JSON), steering summaries with a planted effect (IPG > Act > random)
and their per-prompt rows (common random numbers),
a temperature control, a length-reward method, deletion curves (selection "deletion", their
own k grid), cross-model transfer, SAE metrics, an estimator-sensitivity table, a cross-task overlap
table, Snakemake
benchmark TSVs and an engine-benchmark CSV. `minimal_study` is the /tmp/wf2 shape: one model,
only the length method steered, everything at zero.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

MODELS = ("synthA", "synthB")
TASKS = ("task1", "task2")
GRANS = ("neurons", "heads")
METHODS = {"ipg": ("ipg", "accuracy"), "ipg_length": ("ipg", "length"), "act": ("act", "accuracy"),
           "random_s0": ("random", "accuracy"), "random_s1": ("random", "accuracy")}
EFFECT = {"ipg": 0.30, "ipg_length": 0.05, "act": 0.12, "random_s0": 0.01, "random_s1": 0.02}
N_LAYERS, WIDTH = 4, {"neurons": 32, "heads": 4}


def write_attribution(root: Path, model, task, gran, method, seed) -> None:
    from ipg.attribution.table import make_attribution, write_attribution as write

    rng = np.random.default_rng(seed)
    units, layers, idx = [], [], []
    for layer in range(N_LAYERS):
        for i in range(WIDTH[gran]):
            units.append(f"L{layer}.mlp.n{i}" if gran == "neurons" else f"L{layer}.attn.h{i}")
            layers.append(layer)
            idx.append(i)
    pp = rng.normal(size=(6, len(units)))
    if not method.startswith("random"):
        # planted: the same early units score high on every task; Act's set overlaps IPG's
        # by half, so their steered top-k are different interventions (not "same set")
        start = 4 if method == "act" else 0
        pp[:, start:start + 8] += 3.0
    att = make_attribution(units, layers, idx, pp, [f"p{i}" for i in range(6)], gran, method)
    kind, reward = METHODS[method]
    out = root / "results" / "attribution" / model / task / gran
    out.mkdir(parents=True, exist_ok=True)
    att.metrics = {"kind": kind, "method": method, "config": {"reward": reward},
                   "completeness_residual": float(10 ** rng.uniform(-5, -2)) if kind == "ipg" else None,
                   "phi_delta": 1.0, "n_prompts_nonzero_advantage": 6, "wall_seconds": 1.5,
                   "n_units": len(units)}
    write(att, out / f"{method}.parquet", out / f"{method}.json")


DELETION_KS = (0, 2, 8, 32)


def summary_rows(model, task, gran, method, ks=(2, 8), gammas=(0.0, 0.5, 2.0, 5.0), control=False,
                 deletion_ks=DELETION_KS):
    eff = EFFECT[method]
    rows = [dict(condition="baseline", selection="none", k=0, gamma=1.0, temperature=1.0,
                 accuracy=0.5, length=100.0, entropy=2.0)]
    for sel, sign in (("signed", 1), ("bottom", -1), ("magnitude", 0.5)):
        for k in ks:
            for g in gammas:
                d = sign * eff * (k / 8) * (min(g - 1, 1.0) * 0.5 if g > 1 else g - 1)
                dl = 15 * (g - 1) * sign if method == "ipg_length" else 2 * (g - 1)
                rows.append(dict(condition=f"{sel}/k={k}/gamma={g:g}", selection=sel, k=k, gamma=g,
                                 temperature=1.0, accuracy=0.5 + d, length=100 + dl,
                                 entropy=2.0 - 0.15 * (g - 1)))
    for k in deletion_ks:  # planted: accuracy falls linearly in k, faster for a larger effect
        rows.append(dict(condition=f"deletion/k={k}", selection="deletion", k=k, gamma=0.0,
                         temperature=1.0, accuracy=0.5 - eff * k / 32, length=100.0, entropy=2.0))
    if control:
        for t, acc, h in ((0.5, 0.52, 1.2), (0.7, 0.53, 1.5), (0.85, 0.51, 1.75)):
            rows.append(dict(condition=f"temperature={t}", selection="temperature", k=0, gamma=1.0,
                             temperature=t, accuracy=acc, length=95.0, entropy=h))
    frame = pd.DataFrame(rows)
    for m, half in (("accuracy", 0.05), ("length", 4.0), ("entropy", 0.02)):
        base = frame.loc[0, m]
        frame[f"{m}_lo"], frame[f"{m}_hi"] = frame[m] - half, frame[m] + half
        frame[f"d_{m}"] = frame[m] - base
        frame[f"d_{m}_lo"], frame[f"d_{m}_hi"] = frame[f"d_{m}"] - half, frame[f"d_{m}"] + half
    frame.loc[0, [c for c in frame.columns if c.startswith("d_")]] = 0.0
    frame["matched_accuracy"] = np.nan
    frame["matched_temperature"] = np.nan
    return frame.assign(model=model, task=task, method=method, granularity=gran, mode="scale")


N_PROMPTS, N_SEEDS = 40, 2


def prompt_rows(summary: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per-prompt rows (as run_steering's .parquet) of a summary: 0/1 accuracy per (prompt,
    seed) from the condition's accuracy with a uniform shared by every condition and method
    (common random numbers), length and entropy with small independent noise."""
    shared = np.random.default_rng(12345).random((N_PROMPTS, N_SEEDS))
    rng = np.random.default_rng(seed)
    p, s = np.meshgrid(np.arange(N_PROMPTS), np.arange(N_SEEDS), indexing="ij")
    parts = []
    for _, c in summary.iterrows():
        parts.append(pd.DataFrame(dict(
            condition=c["condition"], selection=c["selection"], k=int(c["k"]), gamma=float(c["gamma"]),
            mode="scale", temperature=float(c["temperature"]), seed=s.ravel(), prompt_id=p.ravel(),
            accuracy=(shared < c["accuracy"]).astype(float).ravel(),
            length=c["length"] + rng.normal(0, 3, p.size), entropy=c["entropy"] + rng.normal(0, 0.02, p.size),
            truncated=0.0, n_units=int(c["k"]), n_samples=1)))
    return pd.concat(parts, ignore_index=True)


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def synthetic_study(tmp_path) -> Path:
    return build_synthetic_study(tmp_path)


def build_synthetic_study(tmp_path: Path) -> Path:
    """Write the synthetic study under tmp_path / "study" and return that folder."""
    root = tmp_path / "study"
    res = root / "results"
    _json(res / "metrics" / "trajectories.json",
          {f"{m}/{t}/0": {"accuracy": 0.5, "mean_length": 100.0, "std_length": 20.0,
                          "tokens_per_second": 50.0, "n_trajectories": 48} for m in MODELS for t in TASKS})
    for i, (m, t, g, meth) in enumerate((m, t, g, meth) for m in MODELS for t in TASKS
                                        for g in GRANS for meth in METHODS):
        write_attribution(root, m, t, g, meth, seed=i)
        out = res / "intervention" / m / t / g / f"{meth}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = summary_rows(m, t, g, meth, control=meth == "ipg")
        summary.to_csv(out, index=False)
        prompt_rows(summary, seed=i).to_parquet(out.with_suffix(".parquet"))
        tsv = root / "benchmarks" / "attribute" / m / t / g / f"{meth}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text("s\th:m:s\tmax_rss\n%.2f\t0:00:01\t400.0\n" % (1 + i % 5))
        if m == "synthA" and meth in ("ipg", "act"):
            out = res / "transfer" / "synthA__to__synthB" / t / g / f"{meth}.csv"
            out.parent.mkdir(parents=True, exist_ok=True)
            rows = summary_rows("synthB", t, g, meth, ks=(8,), gammas=(0.0, 5.0))
            rows[[c for c in rows if c.startswith("d_accuracy")]] *= 0.5
            rows.to_csv(out, index=False)
    for m in MODELS:
        _json(res / "sae" / m / "metrics.json",
              {"L2": {"layer": 2, "fvu": 0.2, "dead_fraction": 0.05, "n_latents": 256, "k": 16},
               "config_hash": "x"})
    sens = res / "sensitivity" / "synthA" / "task1" / "neurons.csv"
    sens.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"variant": ["base", "m8", "baseline_mean"], "spearman": [1.0, 0.97, 0.6],
                  "jaccard_topk": [1.0, 0.9, 0.4], "completeness_residual": [0.003, 0.02, 0.0],
                  "wall_seconds": [5.0, 1.5, 5.2]}).to_csv(sens, index=False)
    from ipg.study.cross_task import write_cross_task  # the stage's own code on the synthetic tables

    targets = [(t, g, meth) for g in GRANS for meth in ("ipg", "act") for t in TASKS]
    write_cross_task(targets, [res / "attribution" / "synthA" / t / g / f"{meth}.parquet"
                               for t, g, meth in targets],
                     {"neurons": 8, "heads": 2}, res / "cross_task" / "synthA.csv")
    from ipg.study.reliability import write_curve  # the reliability stage's own code

    rel = res / "reliability" / "synthA" / "task1"
    write_curve({2: res / "attribution" / "synthA" / "task1" / "neurons" / "ipg.parquet"}, [1, 2],
                4, 5, 0, 0.5, str(rel / "neurons.csv"), str(rel / "neurons.json"))
    (root / "benchmarks" / "train_sae.tsv").write_text("s\th:m:s\tmax_rss\n12.0\t0:00:12\t800\n")
    bench = root / "reports" / "bench" / "attribution.csv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([dict(bench="vs_backprop", variant="ipg", model="random-qwen2-medium", value=6.0,
                       unit="x backprop", target="<= 10", meets_target=True),
                  dict(bench="vs_naive", variant="ipg", model="random-qwen2-medium", value=12.0,
                       unit="x faster", target=">= 20", meets_target=False),
                  dict(bench="memory", variant="exponent", model="random-qwen2-medium", value=1.02,
                       unit="", target="<= 1.1", meets_target=True)]).to_csv(bench, index=False)
    return root


@pytest.fixture
def minimal_study(tmp_path) -> Path:
    """The CI shape: one model, attribution everywhere, only the length method steered, all zeros."""
    root = tmp_path / "mini"
    res = root / "results"
    _json(res / "metrics" / "trajectories.json", {"m/t/0": {"accuracy": 0.0, "mean_length": 12.0}})
    for meth in ("ipg", "ipg_length", "act"):
        write_attribution(root, "m", "t", "neurons", meth, seed=0)
    frame = summary_rows("m", "t", "neurons", "ipg_length", ks=(2,), gammas=(0.0, 2.0))
    num = [c for c in frame.columns if c.startswith(("accuracy", "d_", "length"))]
    frame[num] = 0.0
    out = res / "intervention" / "m" / "t" / "neurons" / "ipg_length.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    prompt_rows(frame, seed=0).to_parquet(out.with_suffix(".parquet"))
    return root
