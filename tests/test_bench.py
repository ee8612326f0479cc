"""`ipg bench attribution --quick`: every bench produces finite positive values, and the naive
per-token loop, captum and the engine agree (no timing thresholds: the CI machine is shared)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ipg.bench.attribution import COLUMNS, meets

BENCHES = {"chunk_time", "chunk_best", "overhead_vs_backprop", "overhead_agreement",
           "score_rounding", "completeness_residual",
           "captum_ratio", "captum_agreement", "naive_speedup", "naive_agreement",
           "shared_prompt_speedup", "peak_memory", "memory_exponent", "matmul_gflops",
           "flops_fraction", "quadrature_points", "quadrature_residual", "quadrature_seconds",
           "quadrature_cost", "scaling_time", "time_exponent", "checkpoint_time", "autocast_time",
           "autocast_agreement", "autocast_completeness", "checkpoint_memory"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    from ipg.cli import main

    out = tmp_path_factory.mktemp("bench")
    csv, png = out / "attribution.csv", out / "attribution.png"
    assert main(["bench", "attribution", "--quick", "--csv", str(csv), "--png", str(png)]) == 0
    return pd.read_csv(csv), png


def test_quick_bench_has_every_bench_with_finite_positive_values(quick) -> None:
    frame, png = quick
    assert list(frame.columns) == COLUMNS
    assert set(frame["bench"]) == BENCHES
    assert all(math.isfinite(v) for v in frame["value"]), frame[["bench", "value"]]
    # fitted exponents may be <= 0 (a flat or noise-dominated curve), the old and new engines'
    # scores may agree bitwise (0); everything else is a time, a ratio, a count or a residual
    rest = frame[~frame["bench"].str.endswith("_exponent") & (frame["bench"] != "overhead_agreement")]
    assert (rest["value"] > 0).all(), rest[["bench", "value"]]
    assert (frame["threads"] >= 1).all()
    assert frame["load_avg"].notna().all()
    assert png.is_file() and png.stat().st_size > 10_000


def test_the_new_pass_rounds_no_worse_than_the_old(quick) -> None:
    """Both passes' float32 scores against the float64 reference: float32 rounding only."""
    frame, _ = quick
    rows = frame[frame["bench"] == "score_rounding"]
    assert len(rows) == 4  # chunk 1 and best, new and old
    assert (rows["value"] < 1e-4).all(), rows[["variant", "value"]]
    assert (rows["value"] > 0).all()  # float32 against float64: never bitwise


def test_naive_and_captum_agree_with_the_engine(quick) -> None:
    frame, _ = quick
    for bench in ("naive_agreement", "captum_agreement", "completeness_residual"):
        value = float(frame.loc[frame["bench"] == bench, "value"].iloc[0])
        assert value < 1e-3, (bench, value)


def test_naive_loop_equals_engine_in_float64() -> None:
    """Independent of the bench's float32 model: the naive loop is exact IG of the surrogate
    (to ~1e-8: HF's RMSNorm computes in float32 even in a float64 model)."""
    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.bench.naive import naive_ipg
    from ipg.bench.workload import bench_model, dense_batch, synthetic_table

    model, _ = bench_model("random-qwen2-tiny")
    model = model.double()
    table = synthetic_table(model.config.vocab_size, n_traj=3, prompt_len=5, gen_len=7, seed=3)
    att = attribute(model, table, "neurons", IPGConfig(m=3, temperature=1.0, max_residual=None),
                    progress=False)
    got = torch.tensor(att.per_prompt[0], dtype=torch.float64)
    want = naive_ipg(model, dense_batch(table), 3)
    assert float((got - want).abs().max() / want.abs().max()) < 1e-6


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_legacy_engine_runs_the_old_pass_and_restores_the_new(temperature) -> None:
    """The bench's pre-issue-16 pass (ipg.bench.legacy): swapped in and out by identity; its
    scores equal the new pass's to float rounding (the new pass takes the down-projection's
    output on the path as y - (1 - alpha) dy, and divides the hidden state by T, not the
    logits); bitwise at T = 1 where the new pass runs the down-projection too (a hooked one)."""
    import ipg.attribution.ipg as engine
    from ipg.attribution import path, surrogate
    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.bench import legacy
    from ipg.bench.workload import bench_model, neuron_modules, synthetic_table

    model, _ = bench_model("random-qwen2-tiny")
    table = synthetic_table(model.config.vocab_size, n_traj=2, prompt_len=5, gen_len=6, seed=1)
    cfg = IPGConfig(m=4, chunk=2, temperature=None, max_residual=None)
    table["temperature"] = temperature
    new = attribute(model, table, "neurons", cfg, progress=False).per_prompt[0]
    with legacy.legacy_engine():
        assert engine.sequence_logprobs is legacy.surrogate.sequence_logprobs
        assert engine.PathHooks is legacy.path.PathHooks
        old = attribute(model, table, "neurons", cfg, progress=False).per_prompt[0]
    assert engine.sequence_logprobs is surrogate.sequence_logprobs
    assert engine.PathHooks is path.PathHooks
    assert abs(old).max() > 0
    assert abs(new - old).max() <= 1e-5 * abs(old).max()
    assert (new != old).any()  # the linear route's arithmetic differs from the old pass's
    if temperature == 1.0:  # a hooked down_proj runs: the old arithmetic, bitwise
        handles = [mod.register_forward_hook(lambda *_: None) for mod in neuron_modules(model)]
        try:
            hooked = attribute(model, table, "neurons", cfg, progress=False).per_prompt[0]
        finally:
            for handle in handles:
                handle.remove()
        assert (hooked == old).all()


def test_meets_parses_targets() -> None:
    assert meets(1.2, "<= 1.5") is True
    assert meets(2.0, "<= 1.5") is False
    assert meets(25.0, ">= 20") is True
    assert meets(1.0, "") is None


def test_quick_bench_scaling_and_quadrature_rows(quick) -> None:
    """Every scaled dimension has 3 levels and an exponent; each quadrature rule reports the
    path points it needed and the residual there (the tiny model reaches < 1%)."""
    frame, _ = quick
    assert set(frame.loc[frame["bench"] == "time_exponent", "variant"]) == {"T", "m", "N", "layers"}
    assert (frame["bench"] == "scaling_time").sum() >= 11
    res = frame[frame["bench"] == "quadrature_residual"]
    assert len(res) == 2 and (res["value"] < 0.01).all(), res
    flops = frame.loc[frame["bench"] == "flops_fraction", "value"]
    assert len(flops) == 2 and (flops < 2).all()  # a fraction of the matmul peak, not above it


def test_quick_bench_execution_rows(quick) -> None:
    """Checkpointing is measured for heads and neurons (with and without, and their ratio);
    bf16 autocast scores track float32 ones."""
    frame, _ = quick
    mem = frame[frame["bench"] == "checkpoint_memory"]
    assert len(mem) == 6 and mem["variant"].str.contains("checkpointed / not").sum() == 2
    corr = frame[(frame["bench"] == "autocast_agreement") & (frame["unit"] == "pearson r")]
    assert len(corr) == 1 and float(corr["value"].iloc[0]) > 0.99
    assert meets(0.5, "< 1.0") is True and meets(1.0, "< 1.0") is False


def test_fewshot_table_prepends_other_prompts(tmp_path) -> None:
    from ipg.bench.fewshot import fewshot_table

    rows = [dict(prompt_id=f"p{i}", sample_id=j, prompt_ids=[10 * i + 1, 10 * i + 2],
                 gen_ids=list(range(100 * i, 100 * i + 3 + i + j)), reward_accuracy=0.0)
            for i in range(3) for j in range(2)]
    folder = tmp_path / "trajectories" / "toy" / "task"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "0.parquet")
    table = fewshot_table("toy", "toy", shots=1, n_traj=2, gen_len=3, results_dir=str(tmp_path))
    # target: the prompt with the longest continuations (p2), one shot of p0 before it
    assert list(table["prompt_ids"].iloc[0]) == [1, 2, 0, 1, 2, 3, 21, 22]
    assert [len(g) for g in table["gen_ids"]] == [3, 3]
    assert list(table["reward_accuracy"]) == [0.0, 1.0]


def test_layer_suffix_and_scaling_sizes() -> None:
    from ipg.bench.scaling import fit_exponent, sizes
    from ipg.bench.workload import bench_model, split_layers

    assert split_layers("results/models/smollm2-135m:L7") == ("results/models/smollm2-135m", 7)
    assert split_layers("random-qwen2-tiny") == ("random-qwen2-tiny", None)
    model, _ = bench_model("random-qwen2-tiny:L1")
    assert len(model.model.layers) == 1
    plan = sizes((2, 8, 16, 4), n_layers=8)
    assert [s.gen_len for s in plan["T"]] == [16, 32, 64]
    assert [(s.m, s.chunk) for s in plan["m"]] == [(4, 4), (8, 4), (16, 4)]
    assert [s.n_prompts for s in plan["N"]] == [1, 2, 4]
    assert [s.layers for s in plan["layers"]] == [2, 4, 8]
    assert abs(fit_exponent([1, 2, 4], [3, 6, 12]) - 1) < 1e-9
    assert abs(fit_exponent([1, 2, 4], [5, 5, 5])) < 1e-9


def test_quadrature_cost_says_when_a_rule_misses_the_target(monkeypatch) -> None:
    """With m capped at 1 and a 1e-6 target no rule reaches it: the cost row must say so
    instead of claiming a cost 'at < target residual'."""
    from ipg.bench import quadrature_cost
    from ipg.bench.quadrature_cost import quadrature_rows

    monkeypatch.setattr(quadrature_cost, "TARGET", 1e-6)
    from ipg.bench.workload import bench_model, synthetic_table

    model, _ = bench_model("random-qwen2-tiny")
    table = synthetic_table(model.config.vocab_size, 2, 8, 8, n_prompts=2)
    rows: list[tuple] = []
    quadrature_rows(model, table, (2, 8, 8, 1), 1, 1, 1, lambda *a, **k: rows.append(a))
    residuals = {r[1].split()[0]: r[3] for r in rows if r[0] == "quadrature_residual"}
    cost = [r[1] for r in rows if r[0] == "quadrature_cost"][0]
    missed = [rule for rule, res in residuals.items() if not res < 1e-6]
    assert missed, residuals  # the case this test is for
    assert all(rule in cost for rule in missed) and "did not reach" in cost


def test_a_failing_bench_keeps_the_rows_measured_before_it(tmp_path, monkeypatch) -> None:
    from ipg.bench import attribution

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("ipg.bench.naive.naive_ipg", boom)
    csv = tmp_path / "bench.csv"
    with pytest.raises(RuntimeError, match="disk full"):
        attribution.run_bench(quick=True, csv_path=csv, benches=["chunk", "naive"], threads=1,
                              log=lambda s: None)
    frame = pd.read_csv(csv)
    assert set(frame["bench"]) == {"chunk_time", "chunk_best"}  # measured before the failure


def test_adaptive_cost_previous_settings_and_their_count() -> None:
    """--previous parses granularity={settings}; a bad item fails in one line; the fixed count
    is m x passes x prompts with an advantage (separate: one pass per layer)."""
    from ipg.bench.adaptive_cost import _fixed_points, parse_previous

    prev = parse_previous(["layers={baseline: mean, multilayer: separate, m: 128}"])
    assert prev == {"layers": {"baseline": "mean", "multilayer": "separate", "m": 128}}
    with pytest.raises(SystemExit, match="expected granularity="):
        parse_previous(["layers"])
    metrics = {"layers": [0, 1, 2, 3], "path_points_per_prompt": {"a": 65, "b": 0, "c": 17}}
    assert _fixed_points({"m": 32, "multilayer": "joint"}, metrics) == 2 * 32
    assert _fixed_points({**prev["layers"]}, metrics) == 2 * 128 * 4


def test_adaptive_cost_sums_a_studys_recorded_path_points(tmp_path) -> None:
    """--from-results: every metrics JSON with path_points counts; the previous count is m x
    passes x prompts with an advantage for the overridden granularity, unchanged elsewhere."""
    import json

    from ipg.bench.adaptive_cost import study_path_points

    layers = {"granularity": "layers", "layers": [0, 1, 2], "config": {"m": 32},
              "path_points": 64, "path_points_per_prompt": {"a": 32, "b": 0, "c": 32}}
    neurons = {"granularity": "neurons", "path_points": 96, "config": {"m": 32}}
    (tmp_path / "attribution" / "m").mkdir(parents=True)
    (tmp_path / "attribution" / "m" / "ipg.json").write_text(json.dumps(layers))
    (tmp_path / "attribution" / "m" / "n.json").write_text(json.dumps(neurons))
    (tmp_path / "attribution" / "m" / "act.json").write_text(json.dumps({"kind": "act"}))
    table = study_path_points(tmp_path, {"layers": {"multilayer": "separate", "m": 128}})
    assert sorted(table["job"]) == ["attribution/m/ipg", "attribution/m/n"]
    row = table.set_index("job").loc["attribution/m/ipg"]
    assert (row["path_points"], row["previous_points"]) == (64, 2 * 128 * 3)
    assert table.set_index("job").loc["attribution/m/n", "previous_points"] == 96
    with pytest.raises(SystemExit, match="no attribution metrics"):
        study_path_points(tmp_path / "attribution" / "empty_nowhere", {})
