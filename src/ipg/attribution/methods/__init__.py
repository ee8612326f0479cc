"""The attribution methods as plug-ins: one module per method kind in this package (its config
+ its function), discovered like tasks and models. IPG and its baselines (docs/method.md,
"Baselines"):

- ipg: the IPG engine (attribution/ipg.py), config IPGConfig (attribution/ipg_config.py).
- ig_likelihood: Integrated Gradients of the plain log-likelihood (A_j = 1).
- act, freq, gxa, contrastive, random: attribution/baselines.py, config BaselineConfig.

Adding a method is one module here (or one named in $IPG_PLUGIN_MODULES, comma-separated
importable module names) that calls `METHODS.add(kind, Method(...))`: its kind then appears in
the registry, in the config schema's `kind` enum with its keys (ipg.config.checks.study_schema) and
in the planned DAG. A plug-in module imports torch / pandas inside its functions, so that
listing the kinds and checking a config at DAG-build time stay light.

`parse_method(entry)` validates an entry {'kind': ..., **params} without a model and returns
(Method, typed config); `MethodSpec.parse(entry)` is the typed form an attribute job receives
(parsed once at DAG-build time in rules/attribution.smk, pickled into the job by Snakemake)
and `run_spec` runs it as is (given an ipg.core.checkpoint store, the kinds with `chunked` save
per-prompt scores per chunk of prompts and resume from them); `run_attribution` parses a dict
entry and runs it; `rename(att, name)` records a method entry's name.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

from ipg.errors import IPGError
from ipg.registry import Registry

if TYPE_CHECKING:  # torch / pandas are imported where used: checking a config stays light
    import pandas as pd
    from torch import nn

    from ipg.attribution.table import Attribution
    from ipg.core.checkpoint import ChunkStore

# (model, trajectories, granularity, typed config, sae, progress, store) -> Attribution
RunFn = Callable[["nn.Module", "pd.DataFrame", str, Any, Any, bool, "ChunkStore | None"],
                 "Attribution"]


@dataclass(frozen=True)
class Method:
    """One attribution method kind: its config (parse: params dict -> typed config, one-line
    IPGError on a bad key or value; keys: the keys it accepts) and its function."""
    kind: str
    parse: Callable[[dict[str, Any]], Any]
    keys: tuple[str, ...]
    run: RunFn
    chunked: bool = False  # resumable per chunk of prompts with a store (the long kinds)
    ipg_family: bool = False  # takes the IPG overrides (granularity_params, study[].attribution)
    description: str = ""


METHODS: Registry[Method] = Registry("attribution method")
MODULES_ENV = "IPG_PLUGIN_MODULES"


def dataclass_keys(cls: type) -> tuple[str, ...]:
    """The field names of a config dataclass (a plug-in's keys)."""
    return tuple(f.name for f in fields(cls))


def discover() -> None:
    """Import every plug-in module of this package and those named in $IPG_PLUGIN_MODULES."""
    names = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
             if not m.name.startswith("_")]
    names += [n.strip() for n in os.environ.get(MODULES_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            raise IPGError(f"${MODULES_ENV} names module {name!r}, which is not importable; "
                           f"fix the name or put its folder on PYTHONPATH") from None


def chunked_kinds() -> tuple[str, ...]:
    return tuple(k for k in METHODS.names() if METHODS.get(k).chunked)


def rename(att: Attribution, name: str) -> Attribution:
    """The same attribution under the method name `name` (table column and metrics)."""
    att.scores["method"] = name
    att.metrics["method"] = name
    return att


def parse_method(method: Any) -> tuple[Method, Any]:
    """Validate a method entry {'kind': ..., **params} without a model: (Method, typed config)."""
    if not isinstance(method, dict) or "kind" not in method:
        raise IPGError(f"a method entry needs a 'kind' ({', '.join(METHODS.names())}), got {method!r}")
    plugin = METHODS.get(method["kind"])  # unknown kind: one line listing the allowed kinds
    return plugin, plugin.parse({k: v for k, v in method.items() if k != "kind"})


@dataclass(frozen=True)
class MethodSpec:
    """One parsed method entry: the typed params of an attribute job (docs/method.md,
    "Baselines"). kind: a registered kind; config: its plug-in's typed config (IPGConfig,
    BaselineConfig, ...), used as is by the engine; params: the entry's keys as given,
    recorded in the metrics and the checkpoint key. Picklable: Snakemake hands it to the job."""
    kind: str
    config: Any
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, entry: Any) -> "MethodSpec":
        """An entry {'kind': ..., **params} checked and parsed (one-line IPGError if bad)."""
        plugin, cfg = parse_method(entry)
        return cls(plugin.kind, cfg, {k: v for k, v in entry.items() if k != "kind"})

    @property
    def entry(self) -> dict[str, Any]:
        """The entry it was parsed from: {'kind': ..., **params}."""
        return {"kind": self.kind, **self.params}


def run_attribution(model: nn.Module, trajectories: pd.DataFrame, granularity: str,
                    method: dict[str, Any], sae: Any = None, progress: bool = True,
                    name: str | None = None, store: ChunkStore | None = None) -> Attribution:
    """One method entry {'kind': ..., **params} -> Attribution named `name` (default: kind):
    run_spec of MethodSpec.parse(method)."""
    return run_spec(model, trajectories, granularity, MethodSpec.parse(method), sae, progress,
                    name, store)


def run_spec(model: nn.Module, trajectories: pd.DataFrame, granularity: str, spec: MethodSpec,
             sae: Any = None, progress: bool = True, name: str | None = None,
             store: ChunkStore | None = None) -> Attribution:
    """A parsed method entry -> Attribution named `name` (default: its kind); its typed config
    goes to the plug-in as is, its params are recorded in the metrics.

    With a `store` (ipg.core.checkpoint), the chunked kinds save per-prompt scores per chunk of
    prompts and resume from them (bitwise identical results); other kinds ignore it."""
    plugin = METHODS.get(spec.kind)
    att = plugin.run(model, trajectories, granularity, spec.config, sae, progress,
                     store if plugin.chunked else None)
    att.metrics["kind"] = plugin.kind
    att.metrics.setdefault("n_trajectories", len(trajectories))
    att.metrics.setdefault("params", dict(spec.params))
    return rename(att, name or plugin.kind)


discover()
CHUNKED = chunked_kinds()  # the long (gradient) kinds: resumable with a store
