"""The IPG study: data -> models -> trajectories (-> attribution -> steering -> report).

Run `make study` (or `snakemake --cores all`); `--configfile config/test.yaml` for the CI size.
This file only wires: every computation lives in the `ipg` package (src/ipg).
"""
import os

for _var, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
                     "TOKENIZERS_PARALLELISM": "false",
                     # idle OpenMP threads sleep instead of spinning: parallel jobs share cores
                     "OMP_WAIT_POLICY": "PASSIVE"}.items():
    os.environ.setdefault(_var, _value)
# Rule scripts import the package from src/ even in a per-rule conda env without it installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.join(workflow.basedir, "src"), os.environ.get("PYTHONPATH", "")) if p)

from ipg.config.study import (
    attribution_targets, cross_task_k, cross_task_on, cross_task_targets, method_params, model_task_pairs, models_in_study,
    sampling_for, sensitivity_params, sensitivity_targets, sensitivity_variants, steering_params,
    steering_targets, transfer_targets, validate_config,
)
from ipg.errors import IPGError
from ipg.workflow import layout as L

# config/default.yaml is the study when no --configfile is given. A --configfile replaces it
# (missing keys take the schema's defaults): merging it into default.yaml would keep default's
# methods, task params and transfer pairs in e.g. the test study.
if not workflow.config_settings.configfiles:
    configfile: os.path.join(workflow.basedir, "config", "default.yaml")

try:
    from ipg.config.study import check_config_files

    check_config_files(list(workflow.config_settings.configfiles)
                       or [os.path.join(workflow.basedir, "config", "default.yaml")])
    _validated = validate_config(config)
except IPGError as _err:
    raise SystemExit(f"ERROR: {_err}")
config.clear()
config.update(_validated)

RESULTS = config["results_dir"]
# the default study writes the tracked reports/; another config its own folder and experiment
STUDY_NAME = config.get("study_name") or L.study_name(workflow.config_settings.configfiles, workflow.basedir)
REPORTS = L.reports_dir(RESULTS, STUDY_NAME)
MODELS = models_in_study(config)
PAIRS = model_task_pairs(config)
SEEDS = config["sampling"]["seeds"]
ATTRIBUTIONS = [L.path(L.ATTRIBUTION, RESULTS, model=m, task=t, granularity=g, method=meth)
                for m, t, g, meth in attribution_targets(config)]
STEERING = [L.path(L.INTERVENTION, RESULTS, model=m, task=t, granularity=g, method=meth)
            for m, t, g, meth in steering_targets(config)]
TRANSFER = [L.path(L.TRANSFER, RESULTS, source=s, target=d, task=t, granularity=g, method=meth)
            for s, d, t, g, meth in transfer_targets(config)]
SAE_MODELS = sorted({e["model"] for e in config["study"] if "sae" in e["granularities"]})
SENSITIVITY = [L.path(L.SENSITIVITY, RESULTS, model=m, task=t, granularity=g) + ".csv"
               for m, t, g in sensitivity_targets(config)]
# cross-task overlap (config: cross_task): ordinary attributions, possibly of tasks outside the study
CROSS_TASK_ATTRIBUTIONS = [L.path(L.ATTRIBUTION, RESULTS, model=m, task=t, granularity=g, method=meth)
                           for m, t, g, meth in cross_task_targets(config)]
CROSS_TASK = [L.path(L.CROSS_TASK, RESULTS, model=config["cross_task"]["model"])] if cross_task_on(config) else []
# reliability curve (config: reliability; rules/reliability.smk): IPG vs n prompts and G
_REL = config.get("reliability") or {}
RELIABILITY = ([L.path(L.RELIABILITY_CURVE, RESULTS, model=_REL["model"], task=_REL["task"], granularity=g) + ".csv"
                for g in _REL["granularities"]] if _REL.get("model") else [])
REPORT_INPUTS = (
    [L.path(L.TRAJECTORY_METRICS, RESULTS)]
    + [f"{a}{ext}" for a in ATTRIBUTIONS for ext in (".parquet", ".json")]
    + [f"{s}.csv" for s in STEERING + TRANSFER]
    + [L.path(L.SAE, RESULTS, model=m) for m in SAE_MODELS]
    + SENSITIVITY
    + CROSS_TASK
    + RELIABILITY
)
# SAEs are trained on the trajectories of each model's first task.
TRAIN_SAE_TASK = {e["model"]: e["tasks"][0] for e in config["study"]}
TRACKED_METRICS = list(dict.fromkeys(
    [L.path(L.TRAJECTORIES, RESULTS, model=m, task=t, seed=s) + ".json" for m, t in PAIRS for s in SEEDS]
    + [f"{a}.json" for a in ATTRIBUTIONS + STEERING + TRANSFER]
    # the cross-task stage's own trajectories and attributions (most are the study's already)
    + [L.path(L.TRAJECTORIES, RESULTS, model=m, task=t, seed=config["attribution"]["trajectory_seed"]) + ".json"
       for m, t, _, _ in cross_task_targets(config)]
    + [f"{a}.json" for a in CROSS_TASK_ATTRIBUTIONS]
))

wildcard_constraints:
    model=r"[^/]+",
    source=r"[^/]+?",
    target=r"[^/]+",
    task=r"[^/]+",
    granularity=r"neurons|heads|layers|sae",
    method=r"[^/]+",
    seed=r"\d+",


include: "rules/common.smk"
include: "rules/tracking.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/trajectories.smk"
include: "rules/sae.smk"
include: "rules/attribution.smk"
include: "rules/intervention.smk"
include: "rules/sensitivity.smk"
include: "rules/cross_task.smk"
include: "rules/reliability.smk"
include: "rules/report.smk"
include: "rules/bench.smk"


rule all:
    input:
        f"{REPORTS}/report.md",
        [L.path(L.TRAJECTORIES, RESULTS, model=m, task=t, seed=s) + ".parquet" for m, t in PAIRS for s in SEEDS],
        L.path(L.TRAJECTORY_METRICS, RESULTS),
        L.path(L.TRACKING_INGESTED, RESULTS),
        [L.path(L.MODEL, RESULTS, model=m) for m in MODELS],
        [f"{a}.parquet" for a in ATTRIBUTIONS],
        [f"{a}.csv" for a in STEERING + TRANSFER],
        CROSS_TASK,
        [f"{L.BENCH_REPORTS}/attribution.csv"] if config["bench"]["in_study"] else [],
