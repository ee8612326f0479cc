"""`ipg bench attribution --quick`: every bench produces finite positive values, and the naive
per-token loop, captum and the engine agree (no timing thresholds: the CI machine is shared)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ipg.bench.attribution import COLUMNS, meets

BENCHES = {"chunk_time", "chunk_best", "overhead_vs_backprop", "completeness_residual",
           "captum_ratio", "captum_agreement", "naive_speedup", "naive_agreement",
           "shared_prompt_speedup", "peak_memory", "memory_exponent"}


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
    assert all(math.isfinite(v) and v > 0 for v in frame["value"]), frame[["bench", "value"]]
    assert (frame["threads"] >= 1).all()
    assert png.is_file() and png.stat().st_size > 10_000


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


def test_meets_parses_targets() -> None:
    assert meets(1.2, "<= 1.5") is True
    assert meets(2.0, "<= 1.5") is False
    assert meets(25.0, ">= 20") is True
    assert meets(1.0, "") is None
