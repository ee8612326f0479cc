"""Where the study's files live: every path template of the workflow, in one place.

Templates are Snakemake wildcard patterns; `{results}` is the config's `results_dir`.
`wild(template, results)` fills only `{results}` (for a rule's input/output, the other
wildcards stay); `path(template, results, **values)` fills all (a concrete target).
The Snakefile, rules/*.smk, `ipg.workflow.targets` (dvc.yaml's stages) and `ipg.report.collect`
read their paths from here.

Reports: the default study (config/default.yaml) writes the git-tracked `reports/`; any other
config writes `{results_dir}/reports/{config name}/` and logs to its own MLflow experiment
(`ipg-study-{config name}`), so a test run never overwrites the tracked report.
"""
from __future__ import annotations

import os
from pathlib import Path

# --- data and results --------------------------------------------------------------------
PREPARED = "data/prepared/{task}.parquet"
MODEL = "{results}/models/{model}"
TRAJECTORIES = "{results}/trajectories/{model}/{task}/{seed}"  # + .parquet / .json
TRAJECTORY_METRICS = "{results}/metrics/trajectories.json"
SAE = "{results}/sae/{model}"
ATTRIBUTION = "{results}/attribution/{model}/{task}/{granularity}/{method}"  # + .parquet / .json
INTERVENTION = "{results}/intervention/{model}/{task}/{granularity}/{method}"  # + .parquet/.csv/.json
UNSTEERED = "{results}/intervention/{model}/{task}/unsteered"  # + .parquet/.json: once per model x task
TRANSFER = "{results}/transfer/{source}__to__{target}/{task}/{granularity}/{method}"
SENSITIVITY_VARIANT = "{results}/sensitivity/{model}/{task}/{granularity}/{variant}"
SENSITIVITY = "{results}/sensitivity/{model}/{task}/{granularity}"  # + .csv / .json
CROSS_TASK = "{results}/cross_task/{model}.csv"
RELIABILITY_POOL = "{results}/reliability/{task}/pool.parquet"
RELIABILITY_TRAJECTORIES = "{results}/reliability/{model}/{task}/trajectories"  # + .parquet / .json
RELIABILITY_VARIANT = "{results}/reliability/{model}/{task}/{granularity}/{variant}"  # + .parquet / .json
RELIABILITY_CURVE = "{results}/reliability/{model}/{task}/{granularity}"  # + .csv / .json
TRACKING_STORE = "{results}/tracking/store.ready"
TRACKING_INGESTED = "{results}/tracking/ingested.json"

# --- per-job logs and benchmarks (relative to the working directory) ------------------------
LOGS = "logs"
BENCHMARKS = "benchmarks"

# --- reports ------------------------------------------------------------------------------
DEFAULT_REPORTS = "reports"
BENCH_REPORTS = "reports/bench"  # the engine benchmarks (on demand; rules/bench.smk)
EXPERIMENT = "ipg-study"


def wild(template: str, results: str) -> str:
    """The template with `{results}` filled and the other wildcards left for Snakemake."""
    return template.replace("{results}", str(results))


def path(template: str, results: str, **values: object) -> str:
    """The template with every wildcard filled."""
    return template.format(results=results, **values)


def log(rule: str, suffix: str = "") -> str:
    """logs/{rule}{suffix}.log, e.g. log("attribute", "/{model}/{task}") (wildcards kept)."""
    return f"{LOGS}/{rule}{suffix}.log"


def benchmark(rule: str, suffix: str = "") -> str:
    """benchmarks/{rule}{suffix}.tsv (the `benchmark:` file of a rule's job)."""
    return f"{BENCHMARKS}/{rule}{suffix}.tsv"


def study_name(configfiles: list[str | os.PathLike] | tuple = (), basedir: str | os.PathLike = ".") -> str:
    """"default" for config/default.yaml (or no --configfile), else the last config file's stem."""
    if not configfiles:
        return "default"
    last = Path(configfiles[-1]).resolve()
    if last == (Path(basedir) / "config" / "default.yaml").resolve():
        return "default"
    return last.stem


def reports_dir(results: str, name: str) -> str:
    """`reports` for the default study, `{results}/reports/{name}` for any other config."""
    return DEFAULT_REPORTS if name == "default" else f"{results}/reports/{name}"


def experiment(name: str) -> str:
    """The MLflow experiment of a study: "ipg-study", or "ipg-study-{name}" for other configs."""
    return EXPERIMENT if name == "default" else f"{EXPERIMENT}-{name}"
