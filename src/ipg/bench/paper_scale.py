"""One measured point of the paper architecture: time, peak memory, counted FLOPs, passes.

    python -m ipg.bench.paper_scale --what ipg --model r1-distill-qwen-1.5b --layers 2 \
        --prompt-len 32 --gen-len 128 --G 2 --m 2 --chunk 2 --traj-chunk 2 --checkpoint-layers
    (prints one JSON line; `measure(Point(...))` runs it in a fresh interpreter)

Workloads (docs/method.md, Cost at the paper's scale):
  sample  the study's batched KV-cache sampler (ipg.core.sampling._sample_batch): n_prompts random
          prompts of P tokens, G rows each, exactly T generated tokens (no stop token)
  steer   the same inside ipg.core.intervention.steer (16 MLP neurons spread over the layers, gamma 2)
  ipg     ipg.attribution.ipg.attribute on neurons: n_prompts prompts x G trajectories of
          P + T tokens, m path points, `chunk` per batch, `traj_chunk` trajectories per group,
          optional layer checkpointing and bf16 autocast
Time: wall seconds and process CPU seconds (on a shared CPU the second leaves out the time
spent waiting for a core; at one thread it is the time the work took). Peak memory: VmHWM above the resident set after the model is built (ipg.bench.memory's
method: the weights are not counted; `weights_mib` says what they take). FLOPs: counted by
torch.utils.flop_counter during the timed run (matmuls and attention; its dispatch adds a
few milliseconds per run). passes: calls of the decoder's forward (prefill + decode steps,
or IPG's forward passes; a checkpointed layer's recompute is not a decoder call).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ipg.errors import IPGError

WORKLOADS = ("sample", "steer", "ipg")
N_STEER_UNITS = 16


@dataclass(frozen=True)
class Point:
    what: str
    model: str = "r1-distill-qwen-1.5b"
    layers: int = 2
    prompt_len: int = 32
    gen_len: int = 64
    G: int = 2
    n_prompts: int = 1
    m: int = 2
    chunk: int = 2
    traj_chunk: int | None = None
    checkpoint_layers: bool = False
    autocast: str = "none"
    dtype: str = "float32"
    vocab: int | None = None  # None: the published vocabulary (tests: a small one)
    hidden: int | None = None  # None: the published width (tests: a small one)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.what not in WORKLOADS:
            raise IPGError(f"paper-scale workload '{self.what}'; allowed: {', '.join(WORKLOADS)}")


def overrides(p: Point) -> dict:
    out: dict = {}
    if p.vocab:
        out["vocab_size"] = p.vocab
    if p.hidden:  # a narrow model of the same topology (tests): head_dim = hidden / heads
        out.update(hidden_size=p.hidden, intermediate_size=p.hidden * 8960 // 1536)
    return out


def _status_kib(key: str) -> int:
    from ipg.bench.memory import _status_kib as read

    return read(key) or 0


def _workload(p: Point, model):
    """A callable running the point's workload once."""
    import torch

    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    if p.what in ("sample", "steer"):
        from contextlib import nullcontext

        from ipg.bench.steering import pick_units
        from ipg.core.intervention import steer
        from ipg.core.sampling import SamplingConfig, _sample_batch

        prompts = [torch.randint(8, vocab, (p.prompt_len,), generator=gen).tolist()
                   for _ in range(p.n_prompts)]
        cfg = SamplingConfig(temperature=1.0, max_new_tokens=p.gen_len, prompts_per_batch=p.n_prompts)
        units = pick_units(model, N_STEER_UNITS) if p.what == "steer" else []
        device = torch.device(p.device)

        def run() -> None:
            ctx = steer(model, units, 2.0) if units else nullcontext()
            with ctx:  # eos id -1: no row stops early, every row generates exactly T tokens
                _sample_batch(model, prompts, p.G, cfg, [-1], 0,
                              torch.Generator(device=device).manual_seed(0))
        return run
    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.bench.workload import synthetic_table

    table = synthetic_table(vocab, p.G, p.prompt_len, p.gen_len, n_prompts=p.n_prompts)
    cfg = IPGConfig(m=p.m, chunk=p.chunk, temperature=1.0, max_residual=None,
                    checkpoint_layers=p.checkpoint_layers, autocast=p.autocast,
                    traj_chunk=p.traj_chunk)
    return lambda: attribute(model, table, "neurons", cfg, progress=False)


_MODELS: dict = {}  # (model, layers, dtype, overrides, device) -> (model, weights MiB)


def _model(p: Point):
    """The point's random model, built once per process (a grid shares it)."""
    import gc

    import transformers.models.qwen2.modeling_qwen2  # noqa: F401 - imported before `before`

    from ipg.bench.paper_arch import paper_model

    key = (p.model, p.layers, p.dtype, json.dumps(overrides(p)), p.device)
    if key not in _MODELS:
        _MODELS.clear()
        gc.collect()
        before = _status_kib("VmRSS")
        model = paper_model(p.model, p.layers, p.dtype, **overrides(p)).to(p.device)
        _MODELS[key] = model, (_status_kib("VmRSS") - before) / 1024
    return _MODELS[key]


def run_point(p: Point) -> dict:
    """Measure one point in this process (see the module docstring)."""
    import gc

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ipg.bench.memory import _peak_kib, _reset_peak

    model, weights_mib = _model(p)
    passes = [0]
    hook = model.get_decoder().register_forward_hook(
        lambda *_: passes.__setitem__(0, passes[0] + 1))
    fn = _workload(p, model)
    cuda = p.device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _status_kib("VmRSS")
    reset = _reset_peak()
    start, cpu_start = time.perf_counter(), time.process_time()
    with FlopCounterMode(display=False) as counter:
        fn()
    if cuda:
        torch.cuda.synchronize()
    hook.remove()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    out = dict(asdict(p), seconds=seconds, cpu_seconds=cpu_seconds, flops=float(counter.get_total_flops()),
               passes=passes[0], weights_mib=weights_mib, base_mib=base / 1024,
               peak_mib=_peak_kib(reset) / 1024, reset=reset,
               threads=torch.get_num_threads())
    if cuda:
        out["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def measure(p: Point | list[Point], threads: int = 1, timeout: float | None = None):
    """run_point in a fresh interpreter: its JSON result (a list of points: one interpreter,
    the peak reset before each point, so each reports its own high-water mark)."""
    points = p if isinstance(p, list) else [p]
    cmd = [sys.executable, "-m", "ipg.bench.paper_scale", "--threads", str(threads),
           "--point", json.dumps([asdict(x) for x in points])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
        "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}  # as ipg.bench.memory: no heap growth
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise IPGError(f"paper-scale point {p} failed: {tail}")
    rows = [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]
    return rows if isinstance(p, list) else rows[-1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ipg.bench.paper_scale",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--point", help="a Point (or a list of Points) as JSON")
    ap.add_argument("--threads", type=int, default=1)
    for f in fields(Point):
        if f.name != "what":
            ap.add_argument("--" + f.name.replace("_", "-"), default=None)
    ap.add_argument("--what", choices=WORKLOADS)
    args = ap.parse_args(argv)
    from ipg.workflow.scripting import set_offline_env

    set_offline_env()
    import torch

    torch.set_num_threads(args.threads)
    if args.point:
        given = json.loads(args.point)
        for item in given if isinstance(given, list) else [given]:
            print(json.dumps(run_point(Point(**item))), flush=True)
        return
    given = {f.name: getattr(args, f.name) for f in fields(Point) if getattr(args, f.name) is not None}
    types = {f.name: f.type for f in fields(Point)}
    conv = {k: (v if "str" in str(types[k]) else int(v)) for k, v in given.items()}
    print(json.dumps(run_point(Point(**conv))))


if __name__ == "__main__":
    main()
