"""Helpers shared by the rule files: per-wildcard parameters read from the validated config.

Typed params: a job's method, sampling, steering and sensitivity settings are parsed here, at
DAG-build time, into the typed objects of ipg.attribution.methods.MethodSpec and ipg.config.jobs
(SamplingSettings, SteeringConfig, VariantSpec); Snakemake pickles them into the job's script,
which uses them as is. Snakemake's params rerun trigger records builtin values only (a
dataclass is skipped: snakemake.persistence `_serialize_param`), so each typed param comes with
a `*_key` param, the canonical dict it was parsed from: a changed setting reruns its jobs.

Parameter dicts are returned with sorted keys: Snakemake's params rerun trigger compares
them by their serialisation, so key order alone must never trigger a rerun.
"""
import os
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError

from ipg.attribution.methods import MethodSpec
from ipg.config.jobs import SaeSettings, SamplingSettings, SteeringConfig, VariantSpec
from ipg.models import get_model_spec

# the conda env of every rule that imports torch (config torch_env: cpu | gpu)
TORCH_ENV = f"../envs/torch-{config['torch_env']}.yaml"


def canonical(value):
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def task_params(wildcards):
    return canonical(config["data"]["task_params"].get(wildcards.task, {}))


def model_params(wildcards):
    return canonical(config["model_params"].get(wildcards.model, {}))


def model_requires(wildcards):
    return {dep: L.path(L.MODEL, RESULTS, model=dep) for dep in get_model_spec(wildcards.model).requires}


def model_chat(wildcards):
    return get_model_spec(wildcards.model).chat


def model_sampling_key(wildcards):
    """The model's sampling settings (ipg.config.study.sampling_for) in canonical key order."""
    return canonical(sampling_for(config, wildcards.model))


def model_sampling(wildcards):
    """The model's typed sampling settings (the job's params)."""
    return SamplingSettings.from_dict(model_sampling_key(wildcards))


def all_cores():
    """--cores (a cluster profile's `cores`: the most threads one job gets), else this host's
    CPUs: commands that run no job (--unlock, --report) give no --cores, and profiles/default
    sets none (it would cap every cluster job at the submit host's cores)."""
    try:
        return workflow.cores
    except WorkflowError:
        return os.cpu_count() or 1


def model_threads(wildcards):
    """The study entry's threads for this model's jobs, else all cores."""
    model = getattr(wildcards, "model", None) or getattr(wildcards, "target", None)
    for entry in config["study"]:
        if entry["model"] == model and entry.get("threads"):
            return min(entry["threads"], all_cores())
    return all_cores()
