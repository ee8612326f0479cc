"""Glue for the thin Snakemake scripts in workflow/scripts: logging, threads, clean errors.

`run_script(snakemake, main)` sends stdout/stderr to the rule's log, sets torch's thread
count to the rule's threads, and turns an IPGError into one line on the console (the full
traceback of anything else still goes to the log).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from typing import Any, Callable

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def set_offline_env() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def run_script(snakemake: Any, main: Callable[[Any], None]) -> None:
    set_offline_env()
    try:  # the report and tracking envs have no torch
        import torch

        torch.set_num_threads(max(1, int(getattr(snakemake, "threads", 1))))
    except ImportError:
        pass
    log_path = snakemake.log[0] if len(snakemake.log) else os.devnull
    with open(log_path, "w", buffering=1) as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        logging.basicConfig(stream=log, level=logging.INFO, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            main(snakemake)
        except Exception as exc:  # noqa: BLE001 - reported once, then re-raised as exit code
            traceback.print_exc(file=log)
            from ipg.errors import IPGError

            line = str(exc) if isinstance(exc, IPGError) else f"{type(exc).__name__}: {exc}"
            print(f"ERROR in rule {snakemake.rule}: {line} (log: {log_path})", file=sys.__stderr__)
            sys.exit(1)
