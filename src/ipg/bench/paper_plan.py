"""The paper's scale: CPU measurements of the paper architecture, the fitted cost model, and
its prediction of the paper study (config/paper.yaml) on an H100-class GPU.

    python -m ipg.bench.paper_plan measure --csv reports/bench/paper_scale_cpu.csv
    python -m ipg.bench.paper_plan predict --cpu-csv reports/bench/paper_scale_cpu.csv \
        --config config/paper.yaml --csv reports/bench/paper_cost.csv

`measure` runs CPU_GRID (ipg.bench.paper_scale points, one interpreter per model depth,
float32 weights, one thread) and writes one row per point. `predict` fits
ipg.bench.cost_model on those rows (rows with fit = False, e.g. CPU bf16 autocast, which
this CPU emulates, are reported but not fitted), writes the measured rows with the model's
prediction and leave-one-out error, and one row per rule of the paper study: jobs, GPU hours
per job (largest) and summed, peak GPU memory per job, under GPU (GPUAssumptions; docs/method.md,
Cost at the paper's scale). Chains are taken at max_new_tokens (an upper bound: every chain at the cap).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ipg.bench.cost_model import Fit, Work, fit, loo_errors, work_of
from ipg.bench.paper_arch import PAPER_MODELS, Arch
from ipg.bench.paper_scale import Point, measure

MODEL = PAPER_MODELS[0]
# Reduced lengths and depths (the per-layer cost is the paper model's): one thread, float32.
_S = dict(model=MODEL, prompt_len=16, G=2)
_I = dict(model=MODEL, prompt_len=16, G=2, m=2, checkpoint_layers=True)
# Ordered cheap first (a 4096-token vocabulary: the per-layer stored tensors, not the
# 151936-wide LM head, set the peak, so the memory fit can tell the two apart; m varies, so
# the layer, head and endpoint FLOP terms separate), then the published vocabulary.
_V = dict(vocab=4096)
CPU_GRID: list[tuple[Point, bool]] = [  # (point, used in the fit)
    (Point("ipg", layers=2, gen_len=64, chunk=2, traj_chunk=2, **_I, **_V), True),
    (Point("ipg", layers=2, gen_len=64, chunk=2, traj_chunk=2, **{**_I, "m": 4}, **_V), True),
    (Point("ipg", layers=2, gen_len=128, chunk=1, traj_chunk=1, **_I, **_V), True),
    (Point("sample", layers=2, gen_len=32, **_S, **_V), True),
    (Point("steer", layers=2, gen_len=32, **_S, **_V), True),
    (Point("ipg", layers=4, gen_len=128, chunk=2, traj_chunk=2, **_I, **_V), True),
    (Point("sample", layers=4, gen_len=32, **_S, **_V), True),
    (Point("sample", layers=2, gen_len=16, **_S), True),
    (Point("ipg", layers=2, gen_len=32, chunk=2, traj_chunk=2, **_I), True),
    (Point("sample", layers=2, gen_len=32, **_S), True),
    (Point("ipg", layers=2, gen_len=32, chunk=2, traj_chunk=2, autocast="bfloat16", **_I), False),
]


@dataclass(frozen=True)
class GPUAssumptions:
    """An H100-class GPU, stated: every number here is an assumption of the prediction."""

    name: str = "NVIDIA H100 SXM5 80 GB"
    peak_flops: float = 989e12  # dense BF16 tensor-core FLOP/s, NVIDIA H100 datasheet (no sparsity)
    mfu: float = 0.40  # sustained share of the peak: PaLM (Chowdhery et al. 2022) reports 46%
    # model FLOPs utilisation with fused kernels; eager transformers kernels assumed below that
    bandwidth: float = 3.35e12  # HBM3 bytes/s, NVIDIA H100 datasheet
    bandwidth_eff: float = 0.8  # sustained share of the HBM bandwidth (streaming reads)
    call_overhead_s: float = 0.025  # one eager forward of 28 layers: kernel launches and
    # Python (an assumption; reports/bench/gpu.csv measures it when a GPU has run)
    memory_gib: float = 80.0
    context_gib: float = 1.0  # CUDA context and allocator slack
    prompt_len: int = 256  # tokens per prompt (chat template + problem; an assumption)

    @property
    def time_coef(self):
        import numpy as np

        return np.array([1 / (self.peak_flops * self.mfu), 1 / (self.bandwidth * self.bandwidth_eff),
                         self.call_overhead_s])


GPU = GPUAssumptions()


def arch_of(row: dict[str, Any]) -> Arch:
    over = {"num_hidden_layers": int(row["layers"])}
    if row.get("vocab") and not _nan(row["vocab"]):
        over["vocab_size"] = int(row["vocab"])
    if row.get("hidden") and not _nan(row["hidden"]):
        over.update(hidden_size=int(row["hidden"]), intermediate_size=int(row["hidden"]) * 8960 // 1536)
    return Arch.named(row["model"], **over)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def run_grid(grid: list[tuple[Point, bool]] = CPU_GRID, threads: int = 1,
             csv: str | Path | None = None) -> pd.DataFrame:
    """Measure the grid: one interpreter per consecutive run of points sharing a model, in grid
    order; with `csv`, the rows so far are written after each interpreter (a stopped run keeps
    what it measured)."""
    rows: list[dict] = []
    batches: list[list[tuple[Point, bool]]] = []
    key = None
    for point, used in grid:
        k = (point.model, point.layers, point.hidden, point.vocab)
        if k != key:
            batches.append([])
            key = k
        batches[-1].append((point, used))
    for batch in batches:
        results = measure([p for p, _ in batch], threads=threads)
        rows += [dict(r, fit=used, load_avg=_load()) for r, (_, used) in zip(results, batch)]
        if csv:
            Path(csv).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(csv, index=False)
    return pd.DataFrame(rows)


def _load() -> float:
    from ipg.bench.workload import load_average

    return load_average()


def fit_rows(frame: pd.DataFrame) -> tuple[Fit, pd.DataFrame]:
    """The fitted model and the measured rows with predictions and leave-one-out errors."""
    rows = frame.to_dict("records")
    used = [r for r in rows if r.get("fit", True)]
    model = fit(used, arch_of)
    loo = dict(zip([id(r) for r in used], loo_errors(used, arch_of)))
    out = []
    for r in rows:
        w, a = work_of(r), arch_of(r)
        bytes_per = 2 if r.get("dtype") == "bfloat16" else 4
        err = loo.get(id(r), (float("nan"), float("nan")))
        out.append(dict(r, analytic_flops=model.flops(a, w), pred_cpu_seconds=model.seconds(a, w, bytes_per),
                        pred_peak_mib=model.peak_mib(a, w, bytes_per),
                        loo_time_err=err[0], loo_mem_err=err[1]))
    return model, pd.DataFrame(out)


def _gpu_seconds(model: Fit, arch: Arch, w: Work, gpu: GPUAssumptions) -> float:
    return float(model.time_features(arch, w, 2) @ gpu.time_coef)


def _gpu_peak_gib(model: Fit, arch: Arch, w: Work, gpu: GPUAssumptions) -> float:
    weights = arch.params * 2  # bf16
    act_mib = model.peak_mib(arch, w, 2)
    return (weights + act_mib * 2**20) / 2**30 + gpu.context_gib


def job_works(config: dict[str, Any], gpu: GPUAssumptions = GPU) -> list[dict[str, Any]]:
    """One entry per job of the model-running rules of the study: its Work list (runs)."""
    from ipg.attribution.ipg_config import IPGConfig
    from ipg.config.study import attribution_targets, method_params, sampling_for, steering_params, steering_targets

    n_attr = int(config["data"]["n_attribution"])
    jobs: list[dict[str, Any]] = []
    for entry in config["study"]:
        model = entry["model"]
        arch = Arch.named(model)
        s = sampling_for(config, model)
        for task in entry["tasks"]:
            for seed in config["sampling"]["seeds"]:
                works = _sampling_works(n_attr, int(s["samples_per_prompt"]), int(s["prompts_per_batch"]),
                                        int(s["max_new_tokens"]), arch, gpu)
                jobs.append(dict(rule="sample_trajectories", model=model, job=f"{task}/{seed}", works=works))
    for model, task, gran, method in attribution_targets(config):
        arch = Arch.named(model)
        s = sampling_for(config, model)
        p = method_params(config, model, gran, method)
        kind = p.pop("kind")
        g, t = int(s["samples_per_prompt"]), int(s["max_new_tokens"])
        base = Work("ipg", arch.layers, gpu.prompt_len, t, g, n_prompts=n_attr)
        if kind in ("ipg", "ig_likelihood"):
            keys = {k: v for k, v in p.items() if k in IPGConfig.__dataclass_fields__}
            cfg = IPGConfig(**keys)
            sep = arch.layers if (cfg.multilayer == "separate" and gran == "layers") else 1
            works = [replace(base, m=cfg.m, chunk=cfg.chunk, traj_chunk=cfg.traj_chunk, separate_layers=sep)]
        elif kind == "gxa":  # one forward + backward per trajectory: an m = 1 IPG (upper bound)
            works = [replace(base, m=1, chunk=1, traj_chunk=2)]
        elif kind in ("act", "freq", "contrastive"):  # one forward: a third of an m = 1 IPG
            works = [replace(base, m=1, chunk=1, traj_chunk=2)]
            jobs.append(dict(rule="attribute", model=model, job=f"{task}/{gran}/{method}", works=works,
                             scale=1 / 3))
            continue
        else:
            works = []
        jobs.append(dict(rule="attribute", model=model, job=f"{task}/{gran}/{method}", works=works))
    rules = [("evaluate_steering", steering_targets(config))]
    from ipg.config.study import transfer_targets

    rules.append(("evaluate_transfer", [(t[1], t[2], t[3], t[4]) for t in transfer_targets(config)]))
    for rule, targets in rules:
        for model, task, gran, method in targets:
            arch = Arch.named(model)
            p = steering_params(config, model, method, gran)
            conds = 1 + len(p["selections"]) * len(p["ks"]) * len(p["gammas"]) * len(p["seeds"]) \
                + len(p.get("control_temperatures") or [])
            n = int(p.get("n_prompts") or config["data"]["n_heldout"])
            works = _sampling_works(n, int(p["samples_per_prompt"]), int(p["prompts_per_batch"]),
                                    int(p["max_new_tokens"]), arch, gpu, what="steer")
            jobs.append(dict(rule=rule, model=model, job=f"{task}/{gran}/{method}", works=works * conds))
    return jobs


def _sampling_works(n: int, g: int, per_batch: int, t: int, arch: Arch, gpu: GPUAssumptions,
                    what: str = "sample") -> list[Work]:
    full, rest = divmod(n, per_batch)
    works = [Work(what, arch.layers, gpu.prompt_len, t, g, n_prompts=per_batch)] * full
    return works + ([Work(what, arch.layers, gpu.prompt_len, t, g, n_prompts=rest)] if rest else [])


def predict_study(model: Fit, config: dict[str, Any], gpu: GPUAssumptions = GPU) -> pd.DataFrame:
    """Per rule and model: jobs, GPU hours (largest job, sum), peak GPU memory of a job."""
    rows = []
    for job in job_works(config, gpu):
        arch = Arch.named(job["model"])
        secs = sum(_gpu_seconds(model, arch, w, gpu) for w in job["works"]) * job.get("scale", 1.0)
        peak = max((_gpu_peak_gib(model, arch, w, gpu) for w in job["works"]), default=0.0)
        rows.append(dict(rule=job["rule"], model=job["model"], job=job["job"], gpu_hours=secs / 3600,
                         peak_gib=peak))
    jobs = pd.DataFrame(rows)
    agg = jobs.groupby(["rule", "model"], sort=False).agg(
        jobs=("job", "size"), gpu_hours_max=("gpu_hours", "max"), gpu_hours_sum=("gpu_hours", "sum"),
        peak_gib_max=("peak_gib", "max"), largest_job=("gpu_hours", lambda s: jobs.loc[s.idxmax(), "job"]))
    return agg.reset_index()


SAFETY = 1.5  # a job's runtime request: its predicted time x SAFETY (the model's error, load)


def check_profile(study: pd.DataFrame, profile: str | Path, gpu: GPUAssumptions = GPU) -> pd.DataFrame:
    """The profile's per-rule runtime (minutes) and GPU against the prediction: one row per rule.
    needed_runtime_min = SAFETY x the largest predicted job; fits_gpu: peak <= the GPU's memory."""
    import yaml

    prof = yaml.safe_load(Path(profile).read_text())
    default = prof.get("default-resources", {})
    rows = []
    for rule, sub in study.groupby("rule", sort=False):
        res = {**default, **(prof.get("set-resources", {}).get(rule) or {})}
        needed = math.ceil(float(sub["gpu_hours_max"].max()) * 60 * SAFETY)
        peak = float(sub["peak_gib_max"].max())
        runtime = res.get("runtime")
        rows.append(dict(rule=rule, profile_runtime_min=runtime, needed_runtime_min=needed,
                         runtime_ok=runtime is not None and float(runtime) >= needed,
                         gpus=res.get("gpu", 0), peak_gib=peak, fits_gpu=peak <= gpu.memory_gib,
                         profile_mem_mb=res.get("mem_mb")))
    return pd.DataFrame(rows)


def fit_frame(model: Fit, points: pd.DataFrame) -> pd.DataFrame:
    """The fitted constants and the model's leave-one-out errors (median |error|)."""
    inv_f, inv_b, o = model.time_coef
    fitted = points[points["fit"].astype(bool)]
    vals = dict(k_ipg_layers=model.k_ipg[0], k_ipg_head=model.k_ipg[1], k_ipg_endpoints=model.k_ipg[2],
                cpu_gflops=1e-9 / inv_f if inv_f else float("inf"),
                cpu_gbytes_s=1e-9 / inv_b if inv_b else float("inf"), call_overhead_s=o,
                loo_time_abs_err_median=float(fitted["loo_time_err"].abs().median()),
                loo_time_abs_err_max=float(fitted["loo_time_err"].abs().max()),
                loo_mem_abs_err_median=float(fitted["loo_mem_err"].abs().median()),
                loo_mem_abs_err_max=float(fitted["loo_mem_err"].abs().max()),
                load_avg=float(points["load_avg"].mean()))
    return pd.DataFrame([dict(key=k, value=v) for k, v in vals.items()])


def assumptions_frame(gpu: GPUAssumptions = GPU) -> pd.DataFrame:
    return pd.DataFrame([dict(key=k, value=v) for k, v in asdict(gpu).items()])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ipg.bench.paper_plan", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--csv", required=True)
    m.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("predict")
    p.add_argument("--cpu-csv", required=True)
    p.add_argument("--config", default="config/paper.yaml")
    p.add_argument("--csv", required=True, help="the study prediction (per rule and model)")
    p.add_argument("--profile", default="profiles/slurm/config.yaml")
    p.add_argument("--points-csv", help="the CPU rows with the model's prediction (default: "
                   "<csv stem>_points.csv)")
    args = ap.parse_args(argv)
    if args.cmd == "measure":
        frame = run_grid(threads=args.threads, csv=args.csv)
        print(frame[["what", "layers", "gen_len", "chunk", "autocast", "cpu_seconds", "peak_mib",
                     "base_mib"]].to_string())
        return
    from ipg.config.study import load_config

    model, points = fit_rows(pd.read_csv(args.cpu_csv).replace({float("nan"): None}))
    study = predict_study(model, load_config(args.config))
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    study.to_csv(args.csv, index=False)
    points_csv = args.points_csv or str(Path(args.csv).with_name(Path(args.csv).stem + "_points.csv"))
    points.to_csv(points_csv, index=False)
    print(points[["what", "layers", "gen_len", "cpu_seconds", "pred_cpu_seconds", "loo_time_err",
                  "peak_mib", "base_mib", "pred_peak_mib", "loo_mem_err"]].to_string())
    print(f"k_ipg={model.k_ipg} time_coef={model.time_coef} mem={model.mem_coef}")
    print(study.to_string())
    check = check_profile(study, args.profile)
    check.to_csv(Path(args.csv).with_name(Path(args.csv).stem + "_profile.csv"), index=False)
    assumptions_frame().to_csv(Path(args.csv).with_name(Path(args.csv).stem + "_assumptions.csv"),
                               index=False)
    print(check.to_string())
    fit_frame(model, points).to_csv(Path(args.csv).with_name(Path(args.csv).stem + "_fit.csv"), index=False)
    from ipg.report.cost import paper_cost_section

    md = Path(args.csv).with_suffix(".md")  # the report's section, readable on its own
    md.write_text("\n".join(paper_cost_section(Path(args.csv).parent, Path(args.csv).stem)) + "\n")


if __name__ == "__main__":
    main()
