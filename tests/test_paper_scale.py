"""The paper architecture, its analytic counts, the cost model and the GPU script (tiny, CPU)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ipg.bench.cost_model import (
    Work, base_flops, bytes_moved, fit, ipg_terms, loo_errors, memory_features, passes,
)
from ipg.bench.paper_arch import PAPER_MODELS, Arch, arch_config, paper_model
from ipg.errors import IPGError

NARROW = dict(hidden_size=96, intermediate_size=560, vocab_size=512)


def test_published_architecture_keys():
    for name in PAPER_MODELS:
        cfg = arch_config(name)
        assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]) == (1536, 28, 8960)
        assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]) == (12, 2, 151936)
    assert not arch_config("r1-distill-qwen-1.5b")["tie_word_embeddings"]
    assert arch_config("qwen2.5-math-1.5b-instruct")["tie_word_embeddings"]


def test_parameter_counts_match_the_published_sizes():
    # the hub pages list 1.78B (R1-Distill, untied head) and 1.54B (Qwen2.5-Math, tied) parameters
    assert Arch.named("r1-distill-qwen-1.5b").params / 1e9 == pytest.approx(1.78, abs=0.005)
    assert Arch.named("qwen2.5-math-1.5b-instruct").params / 1e9 == pytest.approx(1.54, abs=0.005)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_built_model_has_the_counted_parameters(name):
    model = paper_model(name, n_layers=2, **NARROW)
    arch = Arch.named(name, num_hidden_layers=2, **NARROW)
    assert model.config.model_type == "qwen2"
    assert sum(p.numel() for p in model.parameters()) == arch.params
    assert not any(p.requires_grad for p in model.parameters())


def test_bf16_model_is_initialised_in_bf16():
    model = paper_model(PAPER_MODELS[0], n_layers=1, dtype="bfloat16", **NARROW)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert torch.get_default_dtype() == torch.float32


def test_unknown_architecture_names_the_file():
    with pytest.raises(IPGError, match="no architecture file .*known: qwen2.5-math"):
        arch_config("gpt-5")


def _counted(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as c:
        fn()
    return float(c.get_total_flops())


def test_forward_flops_equal_torch_flop_counter():
    model = paper_model(PAPER_MODELS[0], n_layers=2, **NARROW)
    arch = Arch.named(PAPER_MODELS[0], num_hidden_layers=2, **NARROW)
    ids = torch.randint(8, 512, (3, 20))
    with torch.no_grad():
        counted = _counted(lambda: model(input_ids=ids))
    # torch's counter does not see the CPU sdpa kernel: equal without attention
    assert counted == arch.forward_flops(3, 20, 20, attention=False)
    assert arch.forward_flops(3, 20, 20) - counted == 4 * 3 * 20 * 20 * 96 * 2


def test_sampling_flops_equal_torch_flop_counter():
    from ipg.core.sampling import SamplingConfig, _sample_batch

    model = paper_model(PAPER_MODELS[0], n_layers=2, **NARROW)
    arch = Arch.named(PAPER_MODELS[0], num_hidden_layers=2, **NARROW)
    prompts = [torch.randint(8, 512, (7,)).tolist() for _ in range(2)]
    cfg = SamplingConfig(max_new_tokens=9, prompts_per_batch=2)
    counted = _counted(lambda: _sample_batch(model, prompts, 3, cfg, [-1], 0,
                                             torch.Generator().manual_seed(0)))
    assert counted == base_flops(arch, Work("sample", 2, 7, 9, 3, n_prompts=2), attention=False)


def test_measured_point_counts_passes_and_flops():
    from ipg.bench.paper_scale import Point, run_point

    p = Point("ipg", layers=1, hidden=96, vocab=512, prompt_len=6, gen_len=10, G=4, m=3, chunk=2,
              traj_chunk=2, checkpoint_layers=True)
    row = run_point(p)
    w = Work("ipg", 1, 6, 10, 4, m=3, chunk=2, traj_chunk=2)
    assert row["passes"] == passes(w)
    arch = Arch.named(PAPER_MODELS[0], num_hidden_layers=1, **NARROW)
    # at least the LM head's forward per path point and one whole forward (the recording; the
    # path points skip the MLP: docs/method.md, "Cost of one pass"), more than the path points'
    # LM heads with one forward each; at most forward + recompute + backward per point and two
    # endpoint forwards
    terms = ipg_terms(arch, w, attention=False)
    assert terms[1] + terms[2] < row["flops"] <= 3 * (terms[0] + terms[1]) + 2 * terms[2]
    assert row["seconds"] > 0 and row["peak_mib"] >= row["base_mib"]


def test_fit_recovers_known_constants_and_predicts_held_out_rows():
    true_time = np.array([1 / 20e9, 1 / 5e9, 2e-3])
    true_mem = {"sample": np.array([3.0, 1 / 2**20, 2 / 2**20]), "ipg": np.array([5.0, 1 / 2**20, 1 / 2**20, 3 / 2**20])}
    rows = []
    for what, t, chunk, layers in [("sample", 8, 1, 2), ("sample", 16, 1, 2), ("sample", 32, 1, 2),
                                   ("steer", 16, 1, 2), ("ipg", 8, 2, 2), ("ipg", 16, 2, 2), ("ipg", 16, 1, 2),
                                   ("ipg", 32, 2, 2), ("ipg", 32, 2, 4), ("ipg", 512, 1, 4)]:
        w = Work(what, layers, 4, t, 2, m=2 if t < 32 else 4, chunk=chunk, traj_chunk=chunk)
        arch = Arch.named(PAPER_MODELS[0], num_hidden_layers=layers, **NARROW)
        k = np.array([1.3, 0.8, 2.1])
        fl = float(ipg_terms(arch, w) @ k) if what == "ipg" else base_flops(arch, w)
        feats = np.array([fl, bytes_moved(arch, w, 4), passes(w)])
        counted = float(ipg_terms(arch, w, attention=False) @ k) if what == "ipg" else fl
        fam = "ipg" if what == "ipg" else "sample"
        rows.append(dict(what=what, layers=layers, prompt_len=4, gen_len=t, G=2, m=w.m, chunk=chunk,
                         traj_chunk=chunk, flops=counted, cpu_seconds=float(feats @ true_time),
                         base_mib=100.0, peak_mib=100.0 + float(memory_features(arch, w) @ true_mem[fam])))
    arch_of = lambda r: Arch.named(PAPER_MODELS[0], num_hidden_layers=r["layers"], **NARROW)  # noqa: E731
    model = fit(rows, arch_of)
    np.testing.assert_allclose(model.k_ipg, [1.3, 0.8, 2.1], rtol=1e-6)
    np.testing.assert_allclose(model.time_coef, true_time, rtol=1e-6)
    errs = np.array(loo_errors(rows, arch_of))
    assert np.abs(errs[:, 0]).max() < 1e-6  # time: every point predicted from the others
    # memory: without the one long point (T = 512) the fit cannot separate its terms exactly
    assert np.abs(errs[:, 1]).max() < 0.05


def test_gpu_script_runs_tiny_on_cpu(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "gpu_paper_scale.py"
    spec = importlib.util.spec_from_file_location("gpu_paper_scale", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu.csv"
    assert mod.main(["--device", "cpu", "--tiny", "--out", str(out), "--cpu-csv", str(tmp_path / "none.csv")]) == 0
    frame = pd.read_csv(out)
    assert list(frame["what"]) == ["sample", "steer", "ipg"]
    assert (frame["seconds"] > 0).all() and (frame["pred_peak_gib"] > 0).all()
    assert frame["machine"].str.contains("cores").all()


def test_report_cost_sections(tmp_path):
    import json

    from ipg.report.cost import cost_sections

    assert cost_sections(tmp_path) == []
    bench = tmp_path / "bench"
    (bench / "full").mkdir(parents=True)
    pd.DataFrame([dict(rule="attribute", model="m", jobs=2, gpu_hours_max=1.5, gpu_hours_sum=3.0,
                       peak_gib_max=20.0, largest_job="a")]).to_csv(bench / "paper_cost.csv", index=False)
    pd.DataFrame([dict(bench="chunk_time", variant="c=8", model="x", value=0.7, unit="ratio",
                       target="<= 0.8", meets_target=True, load_avg=1.0)]).to_csv(
        bench / "full" / "attribution.csv", index=False)
    (bench / "full" / "machine.json").write_text(json.dumps(dict(date="2026-12-06 03:00 UTC", cpu="EPYC",
                                                                 cores=2, torch="2.13")))
    text = "\n".join(cost_sections(tmp_path))
    assert "Predicted paper study" in text and "| attribute |" in text
    assert "Measured 2026-12-06 03:00 UTC, EPYC (2 cores)" in text and "chunk_time" in text
    assert "No GPU run yet" in text
