"""The typed params of the workflow's jobs besides the method entries (those are
ipg.attribution.methods.MethodSpec), torch-free: ipg.config.study builds them once at DAG-build time
from the validated config, Snakemake pickles them into each job's script, and the job's code
uses them as is; the CLI builds the same objects from its options.

- `SamplingSettings`: one model's trajectory sampling (config `sampling` with the study
  entry's overrides; docs/method.md, "Setting").
- `SteeringConfig`: one steering evaluation (config `steering` resolved for a model, method and
  granularity; docs/method.md, "Eq. 4: control" and "Evaluation").
- `SaeSettings`: one model's TopK SAEs (config `sae`).
- `VariantSpec`: one sensitivity / reliability variant: an IPG entry plus G, the samples per
  prompt it reads (docs/method.md, "Eq. 1": LOO and GRPO need G >= 2).

Defaults live in the config schema (workflow/schemas/config.schema.yaml): `from_dict` fills the
keys a caller leaves out from it, and rejects unknown keys with one line naming them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Mapping

from ipg.errors import IPGError

SAMPLES_KEY = "max_samples_per_prompt"  # a variant's G: not an IPGConfig key
GROUP_ADVANTAGES = ("loo", "grpo")  # need G >= 2 samples per prompt (LOO: the others' mean)
STEERING_MODES = ("scale", "mean")
SELECTIONS = ("signed", "bottom", "magnitude")


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _from_dict(cls: type, values: Mapping[str, Any], defaults: Any, what: str) -> Any:
    """cls(**values) with unknown keys a one-line error and the missing ones from `defaults()`."""
    allowed = _names(cls)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise IPGError(f"unknown {what} key(s) {', '.join(map(repr, unknown))}; allowed: "
                       f"{', '.join(allowed)}")
    missing = [k for k in allowed if k not in values]
    filled = dict(values)
    if missing:
        base = defaults()
        filled.update({k: copy.deepcopy(base[k]) for k in missing if k in base})
    return cls(**filled)


def _positive_int(value: Any, key: str, what: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IPGError(f"{what} key '{key}' must be an integer >= 1"
                       f"{' or null' if allow_none else ''}, got {value!r}")


@lru_cache(maxsize=1)
def _sampling_defaults() -> dict[str, Any]:
    from ipg.config.schema import load_schema

    props = load_schema()["properties"]["sampling"]["properties"]
    return {k: v["default"] for k, v in props.items() if k != "seeds"} | {"n_prompts": None}


@lru_cache(maxsize=1)
def _steering_defaults() -> dict[str, Any]:
    from ipg.config.schema import steering_defaults

    return steering_defaults()


@dataclass(frozen=True)
class SamplingSettings:
    """How one model's trajectories are sampled: G per prompt at temperature T, at most
    max_new_tokens each, prompts_per_batch prompts per batch, the first n_prompts prompts
    (None: all). The seed is the job's (its wildcard): `sampler(seed)`."""
    samples_per_prompt: int
    temperature: float
    max_new_tokens: int
    prompts_per_batch: int
    n_prompts: int | None = None

    def __post_init__(self) -> None:
        for key in ("samples_per_prompt", "max_new_tokens", "prompts_per_batch"):
            _positive_int(getattr(self, key), key, "sampling")
        _positive_int(self.n_prompts, "n_prompts", "sampling", allow_none=True)
        if not self.temperature > 0:
            raise IPGError(f"sampling key 'temperature' must be > 0, got {self.temperature!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SamplingSettings":
        return _from_dict(cls, values, _sampling_defaults, "sampling")

    def sampler(self, seed: int) -> Any:
        """The sampler's ipg.core.sampling.SamplingConfig for one seed."""
        from ipg.core.sampling import SamplingConfig

        return SamplingConfig(temperature=float(self.temperature),
                              max_new_tokens=self.max_new_tokens,
                              prompts_per_batch=self.prompts_per_batch, seed=int(seed))


@dataclass(frozen=True)
class SteeringConfig:
    """One steering evaluation (ipg.study.steering.run_steering): the selections x ks x gammas
    grid steered in `mode`, per sampling seed, G samples per held-out prompt; the deletion
    curve's ks, mean ablation and the temperature control; the sampler's temperature,
    max_new_tokens and prompts_per_batch. Keys as the schema's `steering` section."""
    selections: list[str]
    ks: list[int]
    deletion_ks: list[int]
    mode: str
    mean_ablation: bool
    gammas: list[float]
    seeds: list[int]
    samples_per_prompt: int
    n_prompts: int | None
    prompts_per_batch: int
    per_layer: bool
    control_temperatures: list[float]
    temperature: float
    max_new_tokens: int

    def __post_init__(self) -> None:
        if self.mode not in STEERING_MODES:
            raise IPGError(f"steering key 'mode' = {self.mode!r}; allowed: {', '.join(STEERING_MODES)}")
        bad = [s for s in self.selections if s not in SELECTIONS]
        if bad:
            raise IPGError(f"steering key 'selections' has {bad[0]!r}; allowed: {', '.join(SELECTIONS)}")
        for key in ("samples_per_prompt", "prompts_per_batch", "max_new_tokens"):
            _positive_int(getattr(self, key), key, "steering")
        _positive_int(self.n_prompts, "n_prompts", "steering", allow_none=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SteeringConfig":
        """The keys given, the others the schema's defaults (ipg.config.schema.steering_defaults)."""
        return _from_dict(cls, values, _steering_defaults, "steering")

    @property
    def needs_means(self) -> bool:
        """Mode mean or mean ablation: the units' mean activations (the model's trajectories)."""
        return self.mode == "mean" or bool(self.mean_ablation)

    def as_dict(self) -> dict[str, Any]:
        return {k: copy.deepcopy(getattr(self, k)) for k in _names(type(self))}


@lru_cache(maxsize=1)
def _sae_defaults() -> dict[str, Any]:
    from ipg.config.schema import load_schema

    props = load_schema()["properties"]["sae"]["properties"]
    return {k: v["default"] for k, v in props.items()}


@dataclass(frozen=True)
class SaeSettings:
    """The TopK SAEs of one model (ipg.sae.run.run_train_sae; docs/method.md, "Granularities"):
    one per decoder layer of `layers` (None: the middle layer), n_latents latents, k active per
    token, trained for `epochs` passes. Keys as the schema's `sae` section."""
    layers: list[int] | None
    n_latents: int
    k: int
    epochs: int

    def __post_init__(self) -> None:
        for key in ("n_latents", "k", "epochs"):
            _positive_int(getattr(self, key), key, "sae")
        if self.k > self.n_latents:
            raise IPGError(f"sae key 'k' = {self.k} > n_latents = {self.n_latents}: a TopK SAE "
                           f"keeps at most all its latents; set k <= n_latents")
        if self.layers is not None and any(isinstance(l, bool) or not isinstance(l, int) or l < 0
                                           for l in self.layers):
            raise IPGError(f"sae key 'layers' must be a list of layer indices >= 0 or null, "
                           f"got {self.layers!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SaeSettings":
        """The keys given, the others the schema's defaults."""
        return _from_dict(cls, values, _sae_defaults, "sae")

    def as_dict(self) -> dict[str, Any]:
        return {k: copy.deepcopy(getattr(self, k)) for k in _names(type(self))}


# What a steering job's unsteered and temperature-control rows depend on (besides the model,
# prompts, task and chat): ipg.study.steering.run_unsteered samples them once per model x task.
UNSTEERED_SETTINGS = ("seeds", "samples_per_prompt", "n_prompts", "prompts_per_batch",
                      "temperature", "max_new_tokens")


@dataclass(frozen=True)
class VariantSpec:
    """One sensitivity / reliability variant: the IPG entry it runs (a MethodSpec of kind ipg),
    G (only the first G samples of each prompt by sample_id; None: all), and the variant's keys
    as given (recorded in its metrics)."""
    method: Any  # ipg.attribution.methods.MethodSpec
    max_samples_per_prompt: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> "VariantSpec":
        """IPGConfig keys plus max_samples_per_prompt, checked (one-line IPGError if bad)."""
        from ipg.attribution.methods import MethodSpec

        ipg = dict(params)
        g = ipg.pop(SAMPLES_KEY, None)
        method = MethodSpec.parse({"kind": "ipg", **ipg})
        _positive_int(g, SAMPLES_KEY, "sensitivity", allow_none=True)
        if g is not None and g < 2 and method.config.advantage in GROUP_ADVANTAGES:
            raise IPGError(f"'{SAMPLES_KEY}' = {g} with the {method.config.advantage} advantage: it "
                           f"needs >= 2 samples per prompt; use >= 2 or advantage: raw")
        return cls(method, g, dict(params))
