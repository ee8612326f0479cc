"""Bad configuration: unknown keys, wrong types, unknown names (model, task, granularity,
method, reward, IPG variant), out-of-range values (m = 0) and results_dir outside the project.
Each fails with one line naming the key and the allowed values (harness: reliability_catalogue)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from reliability_catalogue import case_registry, check_case

CASES, case = case_registry("test_bad_config")
BASE_CONFIG = {"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"]}]}


def _config(**top: Any) -> dict:
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg.update(top)
    return cfg


def _validate(cfg: dict) -> Callable[[], Any]:
    from ipg.config import validate_config

    return lambda: validate_config(cfg)


def _check_method(entry: dict) -> Callable[[], Any]:
    from ipg.attribution.methods import check_method

    return lambda: check_method(entry)


# -- the study config (workflow/schemas/config.schema.yaml) -------------------------------------

@case("config: unknown key")
def _(ctx):
    return _validate(_config(n_promtps=3)), ["'n_promtps'"], "allowed keys"


@case("config: wrong type")
def _(ctx):
    return _validate(_config(seed="zero")), ["seed", "'zero'"], "should be of type integer"


@case("config: unknown model")
def _(ctx):
    cfg = _config(study=[{"model": "gpt-9", "tasks": ["chain_sum"]}])
    return _validate(cfg), ["study[0].model", "'gpt-9'"], "allowed: "


@case("config: unknown task")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum", "gsm9k"]}])
    return _validate(cfg), ["study[0].tasks[1]", "'gsm9k'"], "allowed: "


@case("config: unknown granularity")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["atoms"]}])
    return _validate(cfg), ["study[0].granularities[0]", "'atoms'"], "allowed values: neurons"


@case("config: unknown method kind")
def _(ctx):
    cfg = _config(attribution={"methods": {"mine": {"kind": "shap"}}})
    return _validate(cfg), ["attribution.methods.mine.kind", "'shap'"], "allowed values: ipg"


@case("config: study names an undefined method")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum"], "methods": ["ipgg"]}])
    return _validate(cfg), ["study[0].methods[0]", "'ipgg'"], "allowed (attribution.methods): ipg"


@case("config: absolute results_dir")
def _(ctx):
    ctx.mp.delenv("IPG_ALLOWED_DIRS", raising=False)
    return _validate(_config(results_dir="/tmp/ipg-out")), ["results_dir", "'/tmp/ipg-out'"], \
        "IPG_ALLOWED_DIRS"


@case("config: results_dir escaping with ..")
def _(ctx):
    ctx.mp.delenv("IPG_ALLOWED_DIRS", raising=False)
    return _validate(_config(results_dir="results/../../x")), ["results_dir", "'results/../../x'"], \
        "use a relative path such as 'results'"


# -- attribution method entries and IPG variants -------------------------------------------------

@case("method: unknown reward")
def _(ctx):
    return _check_method({"kind": "ipg", "reward": "style"}), ["'reward'", "'style'"], \
        "allowed: accuracy, length"


@case("IPG variant: unknown advantage")
def _(ctx):
    return _check_method({"kind": "ipg", "advantage": "ppo"}), ["'advantage'", "'ppo'"], "allowed: loo"


@case("IPG variant: unknown path")
def _(ctx):
    return _check_method({"kind": "ipg", "path": "zigzag"}), ["'path'", "'zigzag'"], "allowed: offpolicy"


@case("IPG variant: unknown baseline")
def _(ctx):
    return _check_method({"kind": "ipg", "baseline": "blur"}), ["'baseline'", "'blur'"], "allowed: zero"


@case("IPG variant: unknown quadrature")
def _(ctx):
    return _check_method({"kind": "ipg", "quadrature": "simpson"}), ["'quadrature'", "'simpson'"], \
        "allowed: "


@case("IPG config: unknown key")
def _(ctx):
    return _check_method({"kind": "ipg", "n_steps": 8}), ["'n_steps'"], "allowed: "


@case("IPG config: m = 0")
def _(ctx):
    from ipg.attribution.ipg import IPGConfig

    return lambda: IPGConfig(m=0), ["'m'", "got 0"], "must be an integer >= 1"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_config_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch, request) -> None:
    check_case(CASES[name], tmp_path, monkeypatch, request)
