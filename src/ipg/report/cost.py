"""Report sections read from the bench outputs (docs/method.md, Cost at the paper's scale): the
paper-scale cost table (CPU points with the cost model's prediction, the study's GPU prediction and the
Slurm profile check; ipg.bench.paper_plan) and the full engine bench's ratios with the date and
machine it ran on (rule bench_full). Each section is left out when its files are absent.

    reports/bench/paper_cost.csv            study prediction per rule and model
    reports/bench/paper_cost_points.csv     measured CPU points + prediction + LOO errors
    reports/bench/paper_cost_fit.csv        fitted constants, LOO error summary
    reports/bench/paper_cost_assumptions.csv  the GPU assumptions
    reports/bench/paper_cost_profile.csv    profiles/slurm resources vs the prediction
    reports/bench/gpu.csv                   the GPU run (scripts/gpu_paper_scale.py), if any
    reports/bench/full/attribution.csv + machine.json   the full bench and where it ran
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

POINT_COLUMNS = ["what", "layers", "prompt_len", "gen_len", "G", "m", "chunk", "traj_chunk",
                 "autocast", "cpu_seconds", "pred_cpu_seconds", "loo_time_err", "peak_mib",
                 "base_mib", "pred_peak_mib", "loo_mem_err", "fit"]


def _table(frame: pd.DataFrame) -> str:
    from ipg.report.render import md_table

    return md_table(frame) if len(frame) else "_No data._"


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def paper_cost_section(bench_dir: Path, stem: str = "paper_cost") -> list[str]:
    """Markdown lines of the paper-scale cost table ([] when it has not been computed)."""
    study = _read(bench_dir / f"{stem}.csv")
    if study is None:
        return []
    lines = ["## Paper scale: measured points and predicted cost", "",
             "Random-weight DeepSeek-R1-Distill-Qwen-1.5B architecture (published config, "
             "src/ipg/models/architectures/), measured on this CPU at reduced depth and length "
             "(one thread, float32, CPU seconds; peak memory above the weights), and the cost "
             "model fitted on those points (ipg.bench.cost_model) predicting the paper study on an "
             "H100-class GPU. Chains at max_new_tokens (an upper bound).", ""]
    points = _read(bench_dir / f"{stem}_points.csv")
    if points is not None:
        points = points.assign(peak_mib=points["peak_mib"] - points["base_mib"])
        cols = [c for c in POINT_COLUMNS if c in points.columns and c != "base_mib"]
        lines += ["### Measured CPU points and the model's prediction", "",
                  "loo_*_err: relative error of the point predicted by the model fitted without it "
                  "(fit = False: reported, not fitted).", "", _table(points[cols]), ""]
    for name, title in (("fit", "Fitted constants"), ("assumptions", "GPU assumptions (stated)")):
        frame = _read(bench_dir / f"{stem}_{name}.csv")
        if frame is not None:
            lines += [f"### {title}", "", _table(frame), ""]
    lines += ["### Predicted paper study (per rule and model)", "", _table(study), ""]
    profile = _read(bench_dir / f"{stem}_profile.csv")
    if profile is not None:
        lines += ["### profiles/slurm resources against the prediction", "", _table(profile), ""]
    gpu = _read(bench_dir / "gpu.csv")
    lines += (["### Measured on a GPU (scripts/gpu_paper_scale.py)", "", _table(gpu), ""] if gpu is not None
              else ["_No GPU run yet: scripts/gpu_paper_scale.py writes reports/bench/gpu.csv._", ""])
    return lines


def full_bench_section(bench_dir: Path) -> list[str]:
    """Markdown lines quoting the full bench's ratios against their targets, with its date and
    machine (machine.json beside the CSV)."""
    from ipg.bench.machine import describe

    frame = _read(bench_dir / "full" / "attribution.csv")
    if frame is None:
        return []
    meta = bench_dir / "full" / "machine.json"
    where = describe(json.loads(meta.read_text())) if meta.exists() else "machine not recorded"
    targeted = frame[frame["target"].notna() & (frame["target"].astype(str) != "")]
    cols = [c for c in ("bench", "variant", "model", "value", "unit", "target", "meets_target", "load_avg")
            if c in targeted.columns]
    return ["## Engine bench (full)", "", f"Measured {where} (rule bench_full, "
            "reports/bench/full/attribution.csv).", "", _table(targeted[cols]), ""]


def cost_sections(reports_dir: Path) -> list[str]:
    """Both sections, for ipg.report.render."""
    bench = Path(reports_dir) / "bench"
    return paper_cost_section(bench) + full_bench_section(bench)
