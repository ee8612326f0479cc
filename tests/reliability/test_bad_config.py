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
    from ipg.config.study import validate_config

    return lambda: validate_config(cfg)


def _check_method(entry: dict) -> Callable[[], Any]:
    from ipg.attribution.methods import MethodSpec

    return lambda: MethodSpec.parse(entry)


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
    return _validate(cfg), ["attribution.methods.mine.kind", "'shap'", "ipg"], "allowed values: "


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


# -- nested entries and cross-constraints, caught when the DAG is built (issue 14) -----------------

def _study(**entry: Any) -> list[dict]:
    return [{"model": "tiny-qwen2", "tasks": ["chain_sum"], **entry}]


@case("config: method key typo")
def _(ctx):
    cfg = _config(attribution={"methods": {"ipg_length": {"kind": "ipg", "mm": 8}}})
    return _validate(cfg), ["attribution.methods.ipg_length", "'mm'"], "allowed keys: "


@case("config: study steering override typo")
def _(ctx):
    return _validate(_config(study=_study(steering={"gamas": [0.0]}))), \
        ["study[0].steering", "'gamas'"], "allowed keys: "


@case("config: study attribution override typo")
def _(ctx):
    return _validate(_config(study=_study(attribution={"mm": 8}))), \
        ["study[0].attribution", "'mm'"], "allowed keys: "


@case("config: method m = 0")
def _(ctx):
    cfg = _config(attribution={"methods": {"ipg": {"kind": "ipg", "m": 0}}})
    return _validate(cfg), ["attribution.methods.ipg", "'m'", "got 0"], "must be an integer >= 1"


@case("config: study override m = 0")
def _(ctx):
    return _validate(_config(study=_study(attribution={"m": 0}))), \
        ["study[0].attribution", "'m'", "got 0"], "must be an integer >= 1"


@case("config: adaptive quadrature tol out of (0, 1)")
def _(ctx):
    cfg = _config(attribution={"methods": {"ipg": {"kind": "ipg", "quadrature": "adaptive",
                                                   "tol": 0}}})
    return _validate(cfg), ["attribution.methods.ipg", "'tol'", "got 0"], "a number in (0, 1)"


@case("config: adaptive quadrature on the importance path")
def _(ctx):
    cfg = _config(attribution={"methods": {"ipg": {"kind": "ipg", "quadrature": "adaptive",
                                                   "path": "importance"}}})
    return _validate(cfg), ["attribution.methods.ipg", "'adaptive'", "importance"], \
        "set path: offpolicy"


@case("config: G = 1 with the LOO advantage")
def _(ctx):
    return _validate(_config(sampling={"samples_per_prompt": 1})), \
        ["sampling.samples_per_prompt", "G = 1", "loo"], "set samples_per_prompt >= 2"


@case("config: steering k above the number of units")
def _(ctx):
    cfg = _config(steering={"ks": {"neurons": [1000000000]}})
    return _validate(cfg), ["steering.ks.neurons", "1000000000", "256 neurons"], "use ks <= 256"


@case("config: sae layer beyond the model's depth")
def _(ctx):
    cfg = _config(sae={"layers": [99]}, study=_study(granularities=["sae"]))
    return _validate(cfg), ["sae.layers[0]", "99", "2 layers"], "use a layer in 0..1"


@case("config: sae k above its number of latents")
def _(ctx):
    cfg = _config(sae={"n_latents": 16, "k": 32}, study=_study(granularities=["sae"]))
    return _validate(cfg), ["config error at sae", "'k' = 32", "n_latents = 16"], "set k <= n_latents"


@case("config: attribution layers beyond the model's depth")
def _(ctx):
    cfg = _config(attribution={"methods": {"ipg": {"kind": "ipg", "layers": [0, 7]}}})
    return _validate(cfg), ["attribution.methods.ipg.layers", "layer 7"], "use layers in 0..1"


@case("config: model_params key typo")
def _(ctx):
    return _validate(_config(model_params={"tiny-qwen2": {"hiden_size": 16}})), \
        ["model_params.tiny-qwen2", "'hiden_size'"], "allowed keys: "


@case("config: task_params key typo")
def _(ctx):
    cfg = _config(data={"task_params": {"gsm8k": {"data_file": "rows.jsonl"}}})
    return _validate(cfg), ["data.task_params.gsm8k", "'data_file'"], "allowed keys: "


@case("config: sensitivity variant key typo")
def _(ctx):
    cfg = _config(sensitivity={"model": "tiny-qwen2", "task": "chain_sum",
                               "variants": {"m8": {"mm": 8}}})
    return _validate(cfg), ["sensitivity.variants.m8", "'mm'"], "allowed keys: "


@case("config: sensitivity variant G = 1 with LOO")
def _(ctx):
    cfg = _config(sensitivity={"model": "tiny-qwen2", "task": "chain_sum",
                               "variants": {"G1": {"max_samples_per_prompt": 1}}})
    return _validate(cfg), ["sensitivity.variants.G1", "max_samples_per_prompt"], "use >= 2"


@case("config: transfer between models of different sizes")
def _(ctx):
    cfg = _config(study=[{"model": "tiny-qwen2", "tasks": ["chain_sum"]},
                         {"model": "organism", "tasks": ["chain_sum"]}],
                  transfer=[{"source": "tiny-qwen2", "target": "organism"}])
    return _validate(cfg), ["transfer[0]", "tiny-qwen2", "organism"], \
        "pair models of one architecture"


@case("config: duplicate YAML key")
def _(ctx):
    from ipg.config.study import load_config

    path = ctx.tmp / "dup.yaml"
    path.write_text("sampling:\n  temperature: 1.0\n  temperature: 0.5\n")
    return lambda: load_config(path), [str(path), "'temperature'", "lines 2 and 3"], "keep one"


@case("steer: unit table of another model")
def _(ctx):
    import pandas as pd

    from ipg.cli import check_table_fits
    from ipg.models.tiny import tiny_random_model

    model, _ = tiny_random_model("qwen2")  # 128 neurons per layer
    scores = pd.DataFrame({"granularity": "neurons", "layer": [0] * 64, "index": range(64)})
    return lambda: check_table_fits(scores, model, None, "other.parquet"), \
        ["other.parquet", "64 neurons in layer 0", "has 128"], "pass that model's --model"


@case("hub task: custom row without an answer")
def _(ctx):
    import json

    from ipg.tasks import TASKS

    path = ctx.tmp / "rows.jsonl"
    rows = [{"question": "1 + 1?", "answer": "2 #### 2"}, {"question": "2 + 2?"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = {"path": "json", "data_files": str(path), "split": "test"}
    return lambda: TASKS.get("gsm8k").load(2, 0, params), ["gsm8k", "row 1", "'answer'"], \
        "fill it in or drop the row"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_config_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch, request) -> None:
    check_case(CASES[name], tmp_path, monkeypatch, request)
