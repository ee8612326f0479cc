"""The IPG study: data -> models -> trajectories (-> attribution -> steering -> report).

Run `make study` (or `snakemake --cores all`); `--configfile config/test.yaml` for the CI size.
This file only wires: every computation lives in the `ipg` package (src/ipg).
"""
import os

for _var, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
                     "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_var, _value)
# Rule scripts import the package from src/ even in a per-rule conda env without it installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.join(workflow.basedir, "src"), os.environ.get("PYTHONPATH", "")) if p)

from ipg.config import validate_config, models_in_study, model_task_pairs, sampling_for
from ipg.errors import IPGError

configfile: os.path.join(workflow.basedir, "config", "default.yaml")

try:
    _validated = validate_config(config)
except IPGError as _err:
    raise SystemExit(f"ERROR: {_err}")
config.clear()
config.update(_validated)

RESULTS = config["results_dir"]
MODELS = models_in_study(config)
PAIRS = model_task_pairs(config)
SEEDS = config["sampling"]["seeds"]
TRACKED_METRICS = [f"{RESULTS}/trajectories/{m}/{t}/{s}.json" for m, t in PAIRS for s in SEEDS]

include: "rules/common.smk"
include: "rules/tracking.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/trajectories.smk"


rule all:
    input:
        [f"{RESULTS}/trajectories/{m}/{t}/{s}.parquet" for m, t in PAIRS for s in SEEDS],
        f"{RESULTS}/metrics/trajectories.json",
        f"{RESULTS}/tracking/ingested.json",
        [f"{RESULTS}/models/{m}" for m in MODELS],
