"""Study configuration: schema validation with one-line errors, defaults, and name checks.

The schema (workflow/schemas/config.schema.yaml) gives every key a description and a
default. `validate_config` reads Snakemake's `--config` strings as YAML and fills defaults
(ipg.config.schema), rejects unknown keys and wrong types (against the schema file assembled
with the keys the code declares: ipg.config.checks.study_schema), checks model / task /
granularity names against the registries, then every nested entry and cross-constraint
(ipg.config.checks.check_deep), raising `IPGError` with one line that names the key and the
fix. `load_config` reads a file strictly (a duplicate key is an error).

The rest reads the validated config for the rules: targets of each stage, and the params of
one job (`method_params`, `steering_params` with ks / deletion_ks resolved per granularity,
`sensitivity_params` for one estimator variant of the sensitivity stage, `cross_task_targets`
and `cross_task_k` for the cross-task overlap stage). The rules parse these dicts into the
jobs' typed params (ipg.attribution.methods.MethodSpec, ipg.config.jobs) at DAG-build time, and
pass the dicts along only as the params rerun trigger's record (rules/common.smk).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema

from ipg.config.schema import load_schema, load_yaml_strict, normalise_config, one_line
from ipg.errors import IPGError


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a config dict in place-safe fashion and return it with defaults filled."""
    from ipg.config.checks import check_deep, study_schema

    schema = study_schema(schema or load_schema())
    config = normalise_config(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise IPGError(one_line(errors[0]))
    check_results_dir(config["results_dir"])
    register_user_entries(config)
    check_names(config)
    check_steering(config)
    check_sensitivity(config)
    check_cross_task(config)
    check_deep(config)
    return config


ALLOWED_DIRS_ENV = "IPG_ALLOWED_DIRS"


def check_results_dir(results_dir: str) -> None:
    """results_dir must stay inside the project: a relative path that no '..' lifts out of it,
    unless it is (inside) a folder listed in $IPG_ALLOWED_DIRS (os.pathsep-separated)."""
    path = Path(results_dir)
    parts = Path(os.path.normpath(results_dir)).parts
    if not path.is_absolute() and ".." not in parts and results_dir.strip():
        return
    target = Path(os.path.abspath(results_dir))
    for entry in os.environ.get(ALLOWED_DIRS_ENV, "").split(os.pathsep):
        if entry.strip():
            allowed = Path(os.path.abspath(entry.strip()))
            if target == allowed or allowed in target.parents:
                return
    raise IPGError(f"config error at results_dir: {results_dir!r} is outside the project "
                   f"(absolute, empty or escaping with '..'); use a relative path such as "
                   f"'results', or list the folder in ${ALLOWED_DIRS_ENV}")


def register_user_entries(config: dict[str, Any]) -> None:
    """The config's own models: and tasks: entries (ipg.models.user, ipg.tasks.user): checked
    (one-line errors), registered under their names, used as their params (so a changed entry
    reruns its rules), and passed to rule scripts in $IPG_USER_ENTRIES."""
    from ipg.models import user as user_models
    from ipg.tasks import user as user_tasks

    for section, module, params in (("models", user_models, config["model_params"]),
                                    ("tasks", user_tasks, config["data"]["task_params"])):
        for name, entry in config[section].items():
            module.check_entry(name, entry)
            module.register(name, entry)
            params[name] = {**entry, **params.get(name, {})}
    if config["models"] or config["tasks"]:
        os.environ[user_models.ENV] = json.dumps({"models": config["models"], "tasks": config["tasks"]})


def check_tasks(tasks: list[str], where: str) -> None:
    """One line naming the first unregistered task of a config list and the allowed names."""
    from ipg.tasks import TASKS

    for j, task in enumerate(tasks):
        if task not in TASKS:
            raise IPGError(f"config error at {where}[{j}]: unknown task {task!r}; "
                           f"allowed: {', '.join(TASKS.names())}")


def check_names(config: dict[str, Any]) -> None:
    """Model and task names must be registered; granularities known."""
    from ipg.models import MODELS
    from ipg.tasks import TASKS

    for i, entry in enumerate(config["study"]):
        if entry["model"] not in MODELS:
            raise IPGError(f"config error at study[{i}].model: unknown model {entry['model']!r}; "
                           f"allowed: {', '.join(MODELS.names())}")
        check_tasks(entry["tasks"], f"study[{i}].tasks")
    methods = config["attribution"]["methods"]
    for i, entry in enumerate(config["study"]):
        for j, name in enumerate(entry.get("methods") or []):
            if name not in methods:
                raise IPGError(f"config error at study[{i}].methods[{j}]: unknown method {name!r}; "
                               f"allowed (attribution.methods): {', '.join(sorted(methods))}")
    for i, pair in enumerate(config["transfer"]):
        for side in ("source", "target"):
            if pair[side] not in models_in_study(config):
                raise IPGError(f"config error at transfer[{i}].{side}: model {pair[side]!r} is not in "
                               f"the study; allowed: {', '.join(models_in_study(config))}")
        for j, name in enumerate(pair.get("methods") or []):
            if name not in methods:
                raise IPGError(f"config error at transfer[{i}].methods[{j}]: unknown method {name!r}; "
                               f"allowed (attribution.methods): {', '.join(sorted(methods))}")
    for section, registry, label in (("model_params", MODELS, "model"),
                                     ("task_params", TASKS, "task")):
        params = config[section] if section == "model_params" else config["data"]["task_params"]
        for name in params:
            if name not in registry:
                raise IPGError(f"config error at {section}.{name}: unknown {label} {name!r}; "
                               f"allowed: {', '.join(registry.names())}")


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file read strictly (a duplicate key is an error) and validated."""
    return validate_config(load_yaml_strict(path) or {})


def check_config_files(paths: list[str]) -> None:
    """Re-read the config files Snakemake loaded (it keeps the last of duplicate keys) strictly."""
    for path in paths:
        load_yaml_strict(path)


def models_in_study(config: dict[str, Any]) -> list[str]:
    """Every model the study needs built, including the ones they require (e.g. organism)."""
    from ipg.models import MODELS

    out: list[str] = []

    def add(name: str) -> None:
        for dep in MODELS.get(name).requires:
            add(dep)
        if name not in out:
            out.append(name)

    for entry in config["study"]:
        add(entry["model"])
    return out


def sampling_for(config: dict[str, Any], model: str) -> dict[str, Any]:
    """The sampling settings of one model: the global ones with its study entry's overrides."""
    settings = {k: v for k, v in config["sampling"].items() if k != "seeds"}
    for entry in config["study"]:
        if entry["model"] == model:
            settings.update({k: v for k, v in entry.get("sampling", {}).items() if v is not None})
    return settings


def model_task_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["model"], t) for e in config["study"] for t in e["tasks"]]


def config_hash(obj: Any) -> str:
    """A short stable hash of any JSON-able config fragment (recorded with outputs)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ipg_kinds() -> tuple[str, ...]:
    """Method kinds that take the IPG overrides (their plug-in's ipg_family flag)."""
    from ipg.attribution.methods import METHODS

    return tuple(k for k in METHODS.names() if METHODS.get(k).ipg_family)


IPG_KINDS = ipg_kinds()  # ig_likelihood, ipg (and any plug-in of the family)


def methods_for(config: dict[str, Any], model: str) -> list[str]:
    """Attribution method names run for a model (its study entry's subset, or all)."""
    names = list(config["attribution"]["methods"])
    for entry in config["study"]:
        if entry["model"] == model and entry.get("methods"):
            names = [n for n in entry["methods"]]
    return names


def method_params(config: dict[str, Any], model: str, granularity: str, method: str) -> dict[str, Any]:
    """A method's parameters for one (model, granularity): its config entry, plus for the
    IPG family the granularity's and the model's overrides, in that order."""
    params = dict(config["attribution"]["methods"][method])
    if params["kind"] in ipg_kinds():
        params.update(config["attribution"]["granularity_params"].get(granularity, {}))
        for entry in config["study"]:
            if entry["model"] == model:
                params.update(entry.get("attribution", {}))
    return params


def attribution_targets(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(model, task, granularity, method) tuples of the study."""
    out = []
    for entry in config["study"]:
        for task in entry["tasks"]:
            for gran in entry["granularities"]:
                for method in methods_for(config, entry["model"]):
                    out.append((entry["model"], task, gran, method))
    return out


def grid_methods(config: dict[str, Any], model: str) -> list[str]:
    """Methods of a model steered on the full grid (steering.methods; null = all)."""
    wanted = config["steering"]["methods"]
    return [m for m in methods_for(config, model) if wanted is None or m in wanted]


def steered_methods(config: dict[str, Any], model: str) -> list[str]:
    """Methods of a model with an evaluate_steering job: the grid's, plus the deletion-only
    ones (steering.deletion_methods, e.g. more random draws for the deletion curves)."""
    grid = grid_methods(config, model)
    extra = config["steering"]["deletion_methods"]
    return [m for m in methods_for(config, model) if m in grid or m in extra]


def per_granularity(value: Any, granularity: str) -> list[int]:
    """A k list given for every granularity (a list) or per granularity (a mapping)."""
    if isinstance(value, dict):
        return [int(k) for k in value.get(granularity) or []]
    return [int(k) for k in value or []]


def _merge_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A study entry's steering overrides; a k mapping over a k mapping merges per granularity."""
    out = dict(params)
    for key, value in overrides.items():
        if key in ("ks", "deletion_ks") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def steering_params(config: dict[str, Any], model: str, method: str,
                    granularity: str) -> dict[str, Any]:
    """The steering params of one evaluation: global keys, the model's overrides, ks and
    deletion_ks resolved for the granularity, and the model's trajectory temperature /
    max_new_tokens (evaluation samples like the trajectories). A deletion-only method
    (steering.deletion_methods, not in steering.methods) gets no gamma grid: only the
    unsteered baseline and its deletion curve."""
    skip = ("methods", "control_method", "deletion_methods", "control_selections",
            "exploratory", "exploratory_gammas", "method_selections")
    params = {k: v for k, v in config["steering"].items() if k not in skip}
    for entry in config["study"]:
        if entry["model"] == model:
            params = _merge_overrides(params, entry.get("steering", {}))
    params["ks"] = per_granularity(params["ks"], granularity)
    params["deletion_ks"] = per_granularity(params.get("deletion_ks"), granularity)
    from ipg.config.checks import n_units_of

    n_units = n_units_of(config, model, granularity, per_layer=bool(params.get("per_layer")))
    if n_units is not None:  # the curve ends at all units: larger deletion ks are left out
        params["deletion_ks"] = [k for k in params["deletion_ks"] if k <= n_units]
    sampling = sampling_for(config, model)
    params["temperature"] = sampling["temperature"]
    params["max_new_tokens"] = sampling["max_new_tokens"]
    if method != config["steering"]["control_method"]:
        params["control_temperatures"] = []
    _exploratory_and_controls(config, method, params)
    if method not in grid_methods(config, model):
        params.update(selections=["signed"], ks=[], gammas=[], mean_ablation=False,
                      control_temperatures=[])
    return params


def _exploratory_and_controls(config: dict[str, Any], method: str, params: dict[str, Any]) -> None:
    """steering.exploratory off: no deletion curve, mean ablation or exploratory gammas; on:
    exploratory_gammas join the grid. Methods that are not IPG steer control_selections; a
    method named in method_selections steers its own list."""
    steering = config["steering"]
    if steering.get("exploratory", True):
        extra = [float(g) for g in steering.get("exploratory_gammas") or []]
        params["gammas"] = sorted({*map(float, params["gammas"]), *extra})
    else:
        params.update(deletion_ks=[], mean_ablation=False)
    kind = (config["attribution"]["methods"].get(method) or {}).get("kind")
    if steering.get("control_selections") is not None and kind != "ipg":
        params["selections"] = list(steering["control_selections"])
    own = (steering.get("method_selections") or {}).get(method)
    if own is not None:  # e.g. ipg_length: the length family reads its signed set only
        params["selections"] = list(own)


def needs_means(params: dict[str, Any]) -> bool:
    """Whether an evaluation with these steering params needs the units' mean activations
    (mode mean, or the extra mean-ablation condition): then its rule reads the trajectories."""
    from ipg.config.jobs import SteeringConfig

    return SteeringConfig.from_dict(params).needs_means


def check_steering(config: dict[str, Any]) -> None:
    """Deletion-only methods and method_selections' methods must be attribution methods."""
    methods = config["attribution"]["methods"]
    for name in config["steering"].get("method_selections") or {}:
        if name not in methods:
            raise IPGError(f"config error at steering.method_selections.{name}: unknown method "
                           f"{name!r}; allowed (attribution.methods): {', '.join(sorted(methods))}")
    for i, name in enumerate(config["steering"]["deletion_methods"]):
        if name not in methods:
            raise IPGError(f"config error at steering.deletion_methods[{i}]: unknown method "
                           f"{name!r}; allowed (attribution.methods): {', '.join(sorted(methods))}")


def steering_targets(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(m, t, g, meth) for m, t, g, meth in attribution_targets(config)
            if meth in steered_methods(config, m)]


def transfer_targets(config: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(source, target, task, granularity, method) for every configured transfer pair."""
    out = []
    steer = [(m, t, g, meth) for m, t, g, meth in steering_targets(config)
             if meth in grid_methods(config, m)]  # deletion-only methods have no grid to transfer
    for pair in config["transfer"]:
        target_keys = {(t, g, meth) for m, t, g, meth in steer if m == pair["target"]}
        for m, t, g, meth in steer:
            wanted = pair.get("methods")
            if (m == pair["source"] and g != "sae" and (t, g, meth) in target_keys
                    and (wanted is None or meth in wanted)):
                out.append((pair["source"], pair["target"], t, g, meth))
    return out


SENSITIVITY_BASE = "base"  # the variant name of the reference run (sensitivity.base alone)


def sensitivity_targets(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(model, task, granularity) of the sensitivity stage; [] when sensitivity.model is null."""
    sec = config["sensitivity"]
    return [(sec["model"], sec["task"], sec["granularity"])] if sec["model"] else []


def sensitivity_variants(config: dict[str, Any]) -> list[str]:
    """The variant names, the base first, then sorted (a canonical order: reordering the
    config's variants must not look like a params change to Snakemake)."""
    return [SENSITIVITY_BASE, *sorted(config["sensitivity"]["variants"])]


def sensitivity_params(config: dict[str, Any], variant: str) -> dict[str, Any]:
    """IPG params of one sensitivity variant: max_residual null (the residual is measured, not
    enforced: coarse variants are the point), the granularity's and the model's IPG overrides
    (as the study's IPG methods get them), sensitivity.base, then the variant's own keys."""
    sec = config["sensitivity"]
    params: dict[str, Any] = {"max_residual": None}
    params.update(config["attribution"]["granularity_params"].get(sec["granularity"], {}))
    for entry in config["study"]:
        if entry["model"] == sec["model"]:
            params.update(entry.get("attribution", {}))
    params.update(sec["base"])
    if variant != SENSITIVITY_BASE:
        params.update(sec["variants"][variant])
    return params


def check_sensitivity(config: dict[str, Any]) -> None:
    """The sensitivity model / task must be a studied pair (it reads their trajectories), with
    the granularity among the model's (the sae granularity needs the model's SAE)."""
    sec = config["sensitivity"]
    if not sec["model"]:
        return
    pairs = model_task_pairs(config)
    if (sec["model"], sec["task"]) not in pairs:
        raise IPGError(f"config error at sensitivity: model {sec['model']!r} on task "
                       f"{sec['task']!r} is not in the study; use one of "
                       f"{', '.join(f'{m}/{t}' for m, t in pairs)} (or model: null to skip it)")
    grans = sorted({g for e in config["study"] if e["model"] == sec["model"]
                    for g in e["granularities"]})
    if sec["granularity"] not in grans:
        raise IPGError(f"config error at sensitivity.granularity: {sec['granularity']!r} is not "
                       f"attributed for {sec['model']}; allowed: {', '.join(grans)}")
    if SENSITIVITY_BASE in sec["variants"]:
        raise IPGError(f"config error at sensitivity.variants: the name "
                       f"{SENSITIVITY_BASE!r} is reserved for the reference run; rename it")


def cross_task_on(config: dict[str, Any]) -> bool:
    """Whether the cross-task stage runs (cross_task set with a model)."""
    return bool((config.get("cross_task") or {}).get("model"))


def cross_task_targets(config: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(model, task, granularity, method) attributions the cross-task stage reads, tasks in the
    config's order; [] when the stage is off. They are ordinary attribution paths: the rules
    build them with the model's study settings (params are looked up by model)."""
    if not cross_task_on(config):
        return []
    sec = config["cross_task"]
    return [(sec["model"], t, g, m) for g in sec["granularities"] for m in sec["methods"]
            for t in sec["tasks"]]


def cross_task_k(config: dict[str, Any], granularity: str) -> int:
    """The top-k of one granularity in the cross-task stage (one int, or per granularity)."""
    top_k = config["cross_task"]["top_k"]
    return int(top_k[granularity] if isinstance(top_k, dict) else top_k)


def check_cross_task(config: dict[str, Any]) -> None:
    """The cross-task model must be studied (its settings are its study entry's), its tasks
    registered (two at least), its methods attribution methods, its sae granularity trained."""
    if not cross_task_on(config):
        return
    sec = config["cross_task"]
    models = models_in_study(config)
    if sec["model"] not in models:
        raise IPGError(f"config error at cross_task.model: model {sec['model']!r} is not in the "
                       f"study; allowed: {', '.join(models)} (or model: null to skip the stage)")
    if len(sec["tasks"]) < 2:
        raise IPGError(f"config error at cross_task.tasks: {len(sec['tasks'])} task(s) given; "
                       f"name at least two tasks to compare")
    check_tasks(sec["tasks"], "cross_task.tasks")
    methods = config["attribution"]["methods"]
    for j, name in enumerate(sec["methods"]):
        if name not in methods:
            raise IPGError(f"config error at cross_task.methods[{j}]: unknown method {name!r}; "
                           f"allowed (attribution.methods): {', '.join(sorted(methods))}")
    sae = any(e["model"] == sec["model"] and "sae" in e["granularities"] for e in config["study"])
    if "sae" in sec["granularities"] and not sae:
        raise IPGError(f"config error at cross_task.granularities: 'sae' needs the model's SAEs; "
                       f"add sae to the granularities of {sec['model']!r} in study, or drop it here")
    if isinstance(sec["top_k"], dict):
        missing = [g for g in sec["granularities"] if g not in sec["top_k"]]
        if missing:
            raise IPGError(f"config error at cross_task.top_k: no k for {', '.join(missing)}; "
                           f"give one int, or a k for every granularity in cross_task.granularities")
