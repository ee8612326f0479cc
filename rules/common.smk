"""Helpers shared by the rule files: per-wildcard parameters read from the validated config."""
from ipg.models import get_model_spec


def task_params(wildcards):
    return config["data"]["task_params"].get(wildcards.task, {})


def model_params(wildcards):
    return config["model_params"].get(wildcards.model, {})


def model_requires(wildcards):
    return {dep: f"{RESULTS}/models/{dep}" for dep in get_model_spec(wildcards.model).requires}


def model_chat(wildcards):
    return get_model_spec(wildcards.model).chat
