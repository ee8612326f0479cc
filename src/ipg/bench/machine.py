"""The machine and date a benchmark ran on, as a JSON sidecar of its CSV (the report quotes it).

    python -m ipg.bench.machine --out reports/bench/full/machine.json
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else (platform.processor() or "unknown")


def machine_info() -> dict[str, Any]:
    """UTC date and time, host, CPU model and cores, torch version, GPU (if any)."""
    info: dict[str, Any] = dict(
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        host=platform.node(), cpu=cpu_model(), cores=os.cpu_count(), python=platform.python_version())
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = info["gpu"] = None
    return info


def describe(info: dict[str, Any]) -> str:
    """One line: 'date, cpu (n cores)[, gpu], torch x'."""
    gpu = f", {info['gpu']}" if info.get("gpu") else ""
    return f"{info.get('date', '?')}, {info.get('cpu', '?')} ({info.get('cores', '?')} cores){gpu}, " \
           f"torch {info.get('torch', '?')}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ipg.bench.machine", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(machine_info(), indent=1) + "\n")


if __name__ == "__main__":
    main()
