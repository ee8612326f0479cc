"""The paper architecture on a GPU: sampling, IPG and steering at the paper's lengths, measured
next to the cost model's prediction (docs/method.md, Cost at the paper's scale;
ipg.bench.paper_plan).

    python scripts/gpu_paper_scale.py                        # CUDA, bf16, 28 layers, T = 4096
    python scripts/gpu_paper_scale.py --device cpu --tiny    # the CPU smoke test (make test)

Random weights from the published config (no download). Points: `sample` and `steer` (the
study's sampler, n prompts x G rows, exactly T tokens each) and `ipg` (neurons, G
trajectories of P + T tokens, m path points, bf16 autocast, layer checkpointing, chunk and
traj_chunk as config/paper.yaml). Each row: measured seconds and peak GPU memory
(torch.cuda.max_memory_allocated; on a CPU the peak RSS above the weights), and the cost
model's GPU prediction (fitted on --cpu-csv when it exists, else its default pass multipliers
DEFAULT_K_IPG). Writes --out (default reports/bench/gpu.csv) and prints it. A few minutes on an H100.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def points(args: argparse.Namespace):
    from ipg.bench.paper_scale import Point

    common = dict(model=args.model, layers=args.layers, prompt_len=args.prompt_len, G=args.G,
                  dtype=args.dtype, device=args.device, vocab=args.vocab, hidden=args.hidden)
    return [Point("sample", gen_len=args.gen_len, n_prompts=args.n_prompts, **common),
            Point("steer", gen_len=args.gen_len, n_prompts=args.n_prompts, **common),
            Point("ipg", gen_len=args.gen_len, m=args.m, chunk=args.chunk, traj_chunk=args.traj_chunk,
                  checkpoint_layers=True, autocast=args.autocast, **common)]


def predictor(cpu_csv: Path):
    """(seconds, peak GiB) on the assumed GPU for a measured row, from the fitted cost model."""
    import numpy as np
    import pandas as pd

    from ipg.bench.cost_model import DEFAULT_K_IPG, Fit, work_of
    from ipg.bench.paper_plan import GPU, _gpu_peak_gib, _gpu_seconds, arch_of, fit_rows

    if cpu_csv.exists():
        model, _ = fit_rows(pd.read_csv(cpu_csv).replace({float("nan"): None}))
    else:  # no CPU fit: memory coefficients of 1 byte per byte, the default pass multipliers
        one = np.array([0.0, 1 / 2**20, 1 / 2**20, 1 / 2**20])
        model = Fit(DEFAULT_K_IPG, np.zeros(3), {"sample": one[:3], "ipg": one})

    def predict(row: dict) -> tuple[float, float]:
        w, a = work_of(row), arch_of(row)
        return _gpu_seconds(model, a, w, GPU), _gpu_peak_gib(model, a, w, GPU)
    return predict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", default="r1-distill-qwen-1.5b")
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--gen-len", type=int, default=4096)
    ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--n-prompts", type=int, default=2, help="sampling: prompts in the batch")
    ap.add_argument("--m", type=int, default=4, help="IPG path points (per-point costs are reported)")
    ap.add_argument("--chunk", type=int, default=2)
    ap.add_argument("--traj-chunk", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--autocast", default="bfloat16")
    ap.add_argument("--vocab", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: a narrow 2-layer model, short chains")
    ap.add_argument("--cpu-csv", default=str(ROOT / "reports/bench/paper_scale_cpu.csv"))
    ap.add_argument("--out", default=str(ROOT / "reports/bench/gpu.csv"))
    args = ap.parse_args(argv)
    if args.tiny:
        args.layers, args.hidden, args.vocab, args.prompt_len, args.gen_len = 2, 96, 512, 8, 16
        args.G, args.n_prompts, args.m, args.dtype, args.autocast = 4, 1, 2, "float32", "none"
    import pandas as pd
    import torch

    from ipg.bench.machine import describe, machine_info
    from ipg.bench.paper_scale import run_point

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with a GPU, or --device cpu --tiny for the smoke test", file=sys.stderr)
        return 2
    predict = predictor(Path(args.cpu_csv))
    machine = describe(machine_info())
    rows = []
    for point in points(args):
        row = run_point(point)
        tokens = point.n_prompts * point.G * point.gen_len
        measured_peak = row.get("gpu_peak_mib", row["peak_mib"] - row["base_mib"]) / 1024
        pred_s, pred_gib = predict(asdict(point))
        rows.append(dict(what=point.what, layers=point.layers, prompt_len=point.prompt_len,
                         gen_len=point.gen_len, G=point.G, n_prompts=point.n_prompts, m=point.m,
                         chunk=point.chunk, traj_chunk=point.traj_chunk, dtype=point.dtype,
                         autocast=point.autocast, seconds=row["seconds"],
                         ms_per_token=1e3 * row["seconds"] / tokens / (point.m if point.what == "ipg" else 1),
                         peak_gib=measured_peak, pred_seconds=pred_s, pred_peak_gib=pred_gib,
                         flops=row["flops"], achieved_tflops=row["flops"] / row["seconds"] / 1e12,
                         machine=machine))
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.drop(columns="machine").to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
