"""Registering models and tasks (what `snakemake -n` does) must not import heavy libraries.

The Snakefile imports `ipg.config.study`, `ipg.models` and `ipg.tasks` and validates the config's
names on every invocation; each heavy import there (torch alone is seconds) is paid by every
dry run. Model and task modules import their heavy libraries inside the functions that use them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

# Libraries that registering must not import (each costs from 0.2 s to several seconds).
HEAVY = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "math_verify",
    "reasoning_gym",
    "datasets",
    "pandas",
    "champ_dataset",
)

SCRIPT = f"""
import json, sys
import ipg.config.study, ipg.models, ipg.tasks
from ipg.models import MODELS
from ipg.tasks import TASKS

config = ipg.config.study.validate_config({{
    "study": [
        {{"model": "tiny-qwen2", "tasks": ["chain_sum", "gsm8k"]}},
        {{"model": "smollm2-135m", "tasks": ["champ", "basic_arithmetic"]}},
    ],
}})
ipg.config.study.models_in_study(config)
print(json.dumps({{
    "models": sorted(MODELS.names()),
    "tasks": sorted(TASKS.names()),
    "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules),
}}))
"""


def test_registering_imports_no_heavy_library() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # registration itself still happens at import time
    assert {"tiny-qwen2", "tiny-llama", "smollm2-135m"} <= set(out["models"])
    assert {"chain_sum", "gsm8k", "champ", "basic_arithmetic"} <= set(out["tasks"])
    assert out["heavy"] == [], (
        f"importing ipg.config.study/ipg.models/ipg.tasks imported {out['heavy']}; move these imports "
        f"into the functions that use them (python -X importtime shows which module imports them)"
    )
