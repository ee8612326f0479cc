"""Deep config checks at DAG-build time: every nested entry parsed into its typed config, and
the cross-constraints a job would otherwise hit hours later, each a one-line IPGError naming
the key and the fix.

- `study_schema`: the config schema assembled from the declarations next to the code: the
  method `kind` enum and each kind's keys from the method plug-ins (ipg.attribution.methods),
  the IPG override keys from IPGConfig, a study entry's steering keys from the global
  steering section, each model's model_params keys from its ModelSpec.param_keys and each
  task's data.task_params keys from its Task.param_keys (where declared: the hub tasks).
- `check_deep`: every method entry, IPG override, sensitivity variant, model's sampling and
  steering evaluation parsed into the typed params its job receives (MethodSpec with its
  IPGConfig / BaselineConfig, VariantSpec, SamplingSettings, SteeringConfig: the rules build
  the same objects); G vs the advantage (LOO and GRPO need G >= 2); and,
  where the model's size is known without building it (ModelSpec.shape), steering k vs the
  number of units, sae.layers and attribution layers vs the model's depth.
"""
from __future__ import annotations

import copy
from typing import Any

from ipg.config.schema import STEERING_GLOBAL_ONLY
from ipg.errors import IPGError
from ipg.config.jobs import GROUP_ADVANTAGES, SAMPLES_KEY


def _strip_defaults(node: Any) -> Any:
    """A schema fragment without `default`s (an override must not fill in the globals)."""
    if isinstance(node, dict):
        return {k: _strip_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_strip_defaults(v) for v in node]
    return node


def _keys_schema(keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": {k: {} for k in keys}}


def study_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema file's schema with the fragments the code declares (a new copy)."""
    from ipg.attribution.ipg_config import IPGConfig
    from ipg.attribution.methods import METHODS, dataclass_keys
    from ipg.models import MODELS
    from ipg.tasks import TASKS

    schema = copy.deepcopy(schema)
    props = schema["properties"]
    ipg_keys = dataclass_keys(IPGConfig)
    entry = props["attribution"]["properties"]["methods"]["additionalProperties"]
    entry["properties"]["kind"]["enum"] = METHODS.names()
    entry["allOf"] = [
        {"if": {"properties": {"kind": {"const": kind}}},
         "then": _keys_schema(("kind", *METHODS.get(kind).keys))} for kind in METHODS.names()]
    props["attribution"]["properties"]["granularity_params"]["additionalProperties"] = \
        _keys_schema(ipg_keys)
    props["attribution"]["properties"]["granularity_params"]["propertyNames"] = \
        {"enum": props["study"]["items"]["properties"]["granularities"]["items"]["enum"]}
    study = props["study"]["items"]["properties"]
    study["attribution"].update(_keys_schema(ipg_keys))
    steering = props["steering"]["properties"]
    study["steering"].update({"additionalProperties": False, "properties": _strip_defaults(
        {k: v for k, v in steering.items() if k not in STEERING_GLOBAL_ONLY})})
    sens = props["sensitivity"]["properties"]
    sens["base"].update(_keys_schema(ipg_keys))
    sens["variants"]["additionalProperties"] = _keys_schema((*ipg_keys, SAMPLES_KEY))
    model_params = props["model_params"]
    model_params["properties"] = {
        name: _keys_schema(MODELS.get(name).param_keys) if MODELS.get(name).param_keys is not None
        else {"type": "object"} for name in MODELS.names()}
    task_params = props["data"]["properties"]["task_params"]
    task_params["properties"] = {
        name: _keys_schema(TASKS.get(name).param_keys) if TASKS.get(name).param_keys is not None
        else {"type": "object"} for name in TASKS.names()}
    return schema


def _fail(where: str, err: IPGError) -> IPGError:
    return IPGError(f"config error at {where}: {err}")


def check_methods(config: dict[str, Any]) -> None:
    """Every method entry, and every IPG-family entry with each model's and granularity's
    overrides, parsed into its typed config."""
    from ipg.attribution.methods import MethodSpec
    from ipg.config.study import method_params, methods_for

    for name, entry in config["attribution"]["methods"].items():
        try:
            MethodSpec.parse(entry)
        except IPGError as err:
            raise _fail(f"attribution.methods.{name}", err) from None
    for i, study in enumerate(config["study"]):
        for gran in study.get("granularities") or []:
            for name in methods_for(config, study["model"]):
                try:
                    MethodSpec.parse(method_params(config, study["model"], gran, name))
                except IPGError as err:
                    raise IPGError(f"config error at study[{i}].attribution (method {name!r}, "
                                   f"granularity {gran}): {err}") from None


def check_group_size(config: dict[str, Any]) -> None:
    """G (samples_per_prompt) >= 2 for every IPG method with a LOO / GRPO advantage."""
    from ipg.attribution.methods import METHODS
    from ipg.config.study import method_params, methods_for, sampling_for

    for i, study in enumerate(config["study"]):
        model = study["model"]
        g = sampling_for(config, model)["samples_per_prompt"]
        if g >= 2:
            continue
        where = (f"study[{i}].sampling.samples_per_prompt"
                 if (study.get("sampling") or {}).get("samples_per_prompt") is not None
                 else "sampling.samples_per_prompt")
        for name in methods_for(config, model):
            for gran in study.get("granularities") or []:
                params = method_params(config, model, gran, name)
                if not METHODS.get(params["kind"]).ipg_family:
                    continue
                advantage = params.get("advantage", "loo")
                if advantage in GROUP_ADVANTAGES:
                    raise IPGError(f"config error at {where}: G = {g} with the {advantage} "
                                   f"advantage of method {name!r} ({model}): it needs >= 2 "
                                   f"samples per prompt; set samples_per_prompt >= 2 or the "
                                   f"method's advantage: raw")


def check_sensitivity_variants(config: dict[str, Any]) -> None:
    """Every sensitivity variant parsed into its VariantSpec (IPGConfig keys; G vs the LOO /
    GRPO advantage)."""
    from ipg.config.study import sensitivity_params, sensitivity_variants
    from ipg.config.jobs import VariantSpec

    if not config["sensitivity"]["model"]:
        return
    for variant in sensitivity_variants(config):
        where = ("sensitivity.base" if variant == "base" else f"sensitivity.variants.{variant}")
        try:
            VariantSpec.parse(sensitivity_params(config, variant))
        except IPGError as err:
            raise _fail(where, err) from None


def check_job_settings(config: dict[str, Any]) -> None:
    """Every model's sampling and every steering evaluation parsed into the typed params its
    job receives (SamplingSettings, SteeringConfig, SaeSettings)."""
    from ipg.config.study import sampling_for, steering_params, steering_targets
    from ipg.config.jobs import SaeSettings, SamplingSettings, SteeringConfig

    if any("sae" in e["granularities"] for e in config["study"]):
        try:
            SaeSettings.from_dict(config.get("sae") or {})
        except IPGError as err:
            raise _fail("sae", err) from None

    for i, study in enumerate(config["study"]):
        try:
            SamplingSettings.from_dict(sampling_for(config, study["model"]))
        except IPGError as err:
            raise _fail(f"study[{i}].sampling (model {study['model']!r})", err) from None
    for model, gran, method in dict.fromkeys((m, g, meth) for m, _, g, meth in
                                             steering_targets(config)):
        try:
            SteeringConfig.from_dict(steering_params(config, model, method, gran))
        except IPGError as err:
            raise _fail(f"steering (model {model!r}, method {method!r}, granularity {gran})",
                        err) from None


def n_units_of(config: dict[str, Any], model: str, granularity: str,
               per_layer: bool = False) -> int | None:
    """The number of units of a model's granularity (in one layer: per_layer) where its size is
    known without building it; None otherwise."""
    shape = _shape(config, model)
    if shape is None:
        return None
    if granularity == "sae":
        n_layers = 1 if per_layer else len(_sae_layers(config, shape.n_layers) or [])
        return config["sae"]["n_latents"] * n_layers
    return shape.n_units(granularity, 1 if per_layer else None)


def _shape(config: dict[str, Any], model: str) -> Any:
    """The model's size from its spec and model_params (None: unknown without building)."""
    from ipg.models import MODELS

    spec = MODELS.get(model)
    if spec.shape is None:
        if spec.requires and spec.param_keys is not None:  # fine-tuned from its requirement
            return _shape(config, spec.requires[0])
        return None
    return spec.shape(dict(config["model_params"].get(model) or {}))


def _sae_layers(config: dict[str, Any], n_layers: int | None) -> list[int] | None:
    layers = config["sae"]["layers"]
    if layers is None:
        return None if n_layers is None else [n_layers // 2]
    return list(layers)


def check_sizes(config: dict[str, Any]) -> None:
    """Layers vs depth (sae.layers, method layers) and k vs units, for models of known size."""
    from ipg.attribution.methods import MethodSpec
    from ipg.config.study import method_params, methods_for, steering_params, steered_methods

    for i, study in enumerate(config["study"]):
        model = study["model"]
        shape = _shape(config, model)
        if shape is None:
            continue
        depth = shape.n_layers
        grans = study.get("granularities") or []
        if "sae" in grans:
            for j, layer in enumerate(config["sae"]["layers"] or []):
                if layer >= depth:
                    raise IPGError(f"config error at sae.layers[{j}]: layer {layer} is beyond "
                                   f"{model}'s {depth} layers; use a layer in 0..{depth - 1}")
        for gran in grans:
            for name in methods_for(config, model):
                cfg = MethodSpec.parse(method_params(config, model, gran, name)).config
                for layer in getattr(cfg, "layers", None) or []:
                    if not 0 <= layer < depth:
                        raise IPGError(
                            f"config error at attribution.methods.{name}.layers: layer {layer} "
                            f"is beyond {model}'s {depth} layers; use layers in 0..{depth - 1}")
            n_units = n_units_of(config, model, gran)
            what = f"{n_units} SAE latents" if gran == "sae" else f"{n_units} {gran}"
            for name in steered_methods(config, model):
                params = steering_params(config, model, name, gran)
                n = n_units
                if params.get("per_layer"):  # k units from every layer
                    n = n_units_of(config, model, gran, per_layer=True)
                    what = f"{n} {'SAE latents' if gran == 'sae' else gran} per layer"
                too_big = [k for k in params["ks"] if k > n]
                if too_big:  # deletion_ks beyond the units: left out (steering_params)
                    overridden = "ks" in (study.get("steering") or {})
                    where = f"study[{i}].steering.ks" if overridden else "steering.ks"
                    source = study["steering"]["ks"] if overridden else config["steering"]["ks"]
                    where += f".{gran}" if isinstance(source, dict) else ""
                    raise IPGError(f"config error at {where}: k = {too_big[0]} exceeds the "
                                   f"{what} of {model} ({gran}); use ks <= {n}")


def check_transfer_shapes(config: dict[str, Any]) -> None:
    """Units selected on one model steer another only if both have the same size."""
    for i, pair in enumerate(config["transfer"]):
        src, dst = _shape(config, pair["source"]), _shape(config, pair["target"])
        if src is not None and dst is not None and src != dst:
            raise IPGError(f"config error at transfer[{i}]: {pair['source']} ({src.n_layers} "
                           f"layers, {src.intermediate_size} neurons, {src.n_heads} heads per "
                           f"layer) and {pair['target']} ({dst.n_layers}, {dst.intermediate_size}, "
                           f"{dst.n_heads}) differ in size; pair models of one architecture")


def check_deep(config: dict[str, Any]) -> None:
    check_transfer_shapes(config)
    check_methods(config)
    check_group_size(config)
    check_sensitivity_variants(config)
    check_job_settings(config)
    check_sizes(config)
