"""Peak resident memory of one attribution (or one plain forward + backward) in a fresh process.

    python -m ipg.bench.memory --model random-qwen2-medium --what ipg --n-traj 4 \
        --prompt-len 16 --gen-len 256 --m 2 --threads 2        # prints one JSON line
    (--n-prompts k: k prompts of n-traj trajectories each; --model name:L3: 3 layers)

tracemalloc does not see torch's allocator, so the peak resident set size (VmHWM) is read
from /proc/self/status. It is reset (/proc/self/clear_refs, "5") after the model and the
batch are built, so the number is the attribution's own high-water mark above the
resident memory it started from (`peak_mib - base_mib`); the model's weights, memory-mapped
from safetensors, are paged in before that, so they are not counted. Where the reset is not allowed,
getrusage's ru_maxrss (the whole process's peak) is reported and `reset` is false.
`measure(...)` runs this module in a subprocess and returns its JSON (by default with glibc's
mmap threshold pinned: see `measure`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path


def _status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_kib(reset: bool) -> int:
    hwm = _status_kib("VmHWM") if reset else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(model_spec: str, what: str, n_traj: int, prompt_len: int, gen_len: int, m: int,
        chunk: int, n_prompts: int = 1, checkpoint_layers: bool = False,
        autocast: str = "none", granularity: str = "neurons", traj_chunk: int | None = None) -> dict:
    import gc

    import torch

    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.bench.workload import bench_model, dense_batch, plain_passes, synthetic_table

    model, _ = bench_model(model_spec)
    table = synthetic_table(model.config.vocab_size, n_traj, prompt_len, gen_len, n_prompts=n_prompts)
    batch = dense_batch(table)
    with torch.no_grad():  # safetensors weights are memory-mapped: page them in before the
        for param in model.parameters():  # baseline, or the first forward counts them
            param.sum()
    cfg = IPGConfig(m=m, chunk=chunk, temperature=1.0, max_residual=None,
                    checkpoint_layers=checkpoint_layers, autocast=autocast, traj_chunk=traj_chunk)
    gc.collect()
    base = _status_kib("VmRSS") or 0
    reset = _reset_peak()
    start = time.perf_counter()
    if what == "ipg":
        attribute(model, table, granularity, cfg, progress=False)
    else:
        with torch.enable_grad():
            plain_passes(model, batch, m)
    seconds = time.perf_counter() - start
    peak = _peak_kib(reset)
    return dict(peak_mib=peak / 1024, base_mib=base / 1024, reset=reset, seconds=seconds)


def measure(model_spec: str, what: str, n_traj: int, prompt_len: int, gen_len: int, m: int,
            chunk: int = 1, threads: int | None = None, n_prompts: int = 1,
            checkpoint_layers: bool = False, autocast: str = "none",
            allocator: str = "fixed", granularity: str = "neurons",
            traj_chunk: int | None = None) -> dict:
    """Run one measurement in a fresh interpreter; its JSON result.

    allocator "fixed" pins glibc's mmap threshold (MALLOC_MMAP_THRESHOLD_=128 KiB): with its
    default dynamic threshold, buffers freed after one chunk's backward become heap that the
    next chunk reuses only partly, so the RSS grows with the number of chunks although the
    engine holds nothing across them. "glibc" keeps the default (what a user's run sees)."""
    import torch

    threads = threads or torch.get_num_threads()
    cmd = [sys.executable, "-m", "ipg.bench.memory", "--model", model_spec, "--what", what,
           "--n-traj", str(n_traj), "--prompt-len", str(prompt_len), "--gen-len", str(gen_len),
           "--m", str(m), "--chunk", str(chunk), "--threads", str(threads),
           "--n-prompts", str(n_prompts), "--autocast", autocast, "--granularity", granularity]
    cmd += ["--checkpoint-layers"] if checkpoint_layers else []
    cmd += ["--traj-chunk", str(traj_chunk)] if traj_chunk else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    if allocator == "fixed":
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    else:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        from ipg.errors import IPGError

        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise IPGError(f"memory benchmark subprocess failed ({' '.join(cmd[2:])}): {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ipg.bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--what", choices=["ipg", "plain"], default="ipg")
    p.add_argument("--n-traj", type=int, required=True)
    p.add_argument("--prompt-len", type=int, required=True)
    p.add_argument("--gen-len", type=int, required=True)
    p.add_argument("--m", type=int, default=2)
    p.add_argument("--chunk", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-prompts", type=int, default=1)
    p.add_argument("--checkpoint-layers", action="store_true")
    p.add_argument("--autocast", default="none")
    p.add_argument("--granularity", default="neurons")
    p.add_argument("--traj-chunk", type=int, default=None)
    args = p.parse_args(argv)
    from ipg.workflow.scripting import set_offline_env

    set_offline_env()
    import torch

    torch.set_num_threads(args.threads)
    result = run(args.model, args.what, args.n_traj, args.prompt_len, args.gen_len, args.m, args.chunk,
                 args.n_prompts, args.checkpoint_layers, args.autocast, args.granularity, args.traj_chunk)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
