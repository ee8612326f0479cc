"""The method registry (ipg.attribution.methods) and run_method: every kind on the same units
as IPG, IG-likelihood's completeness against log-likelihoods computed here, file round trip."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from ipg.attribution.methods import METHODS, MethodSpec, run_attribution
from ipg.attribution.run import run_method
from ipg.attribution.table import read_attribution
from ipg.errors import IPGError
from tiny_models import ToySAE, sample_table

KINDS = ["ipg", "ig_likelihood", "act", "freq", "gxa", "contrastive", "random"]
SAES = [ToySAE(32, 48, 8, layer=l, seed=l) for l in (0, 1)]
FAST_IG = {"m": 4, "chunk": 4, "max_residual": None}


def run(model, table, gran, kind, name=None, **params):
    if kind in ("ipg", "ig_likelihood"):
        params = {**FAST_IG, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_attribution(model, table, gran, {"kind": kind, **params}, SAES, False, name)


@pytest.fixture(scope="module")
def table(qwen):
    return sample_table(qwen, n_prompts=3, G=3, seed=5)


def test_registry_lists_every_kind_without_heavy_imports() -> None:
    assert set(KINDS) <= set(METHODS.names())  # the study's kinds; a plug-in may add more
    code = ("import sys, ipg.attribution.methods as m; m.MethodSpec.parse({'kind': 'freq'}); "
            "print([x for x in ('torch', 'pandas') if x in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # config checks (snakemake -n) stay light


@pytest.mark.parametrize("gran", ["neurons", "heads", "layers", "sae"])
def test_every_method_uses_ipgs_units_and_prompts(gran, qwen, table) -> None:
    ref = run(qwen, table, gran, "ipg")
    for kind in KINDS:
        att = run(qwen, table, gran, kind, name=f"{kind}_x")
        assert list(att.scores["unit"]) == list(ref.scores["unit"]), kind
        assert list(att.scores["layer"]) == list(ref.scores["layer"]), kind
        assert list(att.scores["index"]) == list(ref.scores["index"]), kind
        assert att.prompt_ids == ref.prompt_ids == ["p0", "p1", "p2"], kind
        assert att.per_prompt.shape == (3, len(ref.scores)), kind
        assert (att.scores["method"] == f"{kind}_x").all() and att.metrics["method"] == f"{kind}_x"
        assert att.metrics["kind"] == kind and att.metrics["n_trajectories"] == 9
        assert att.metrics["wall_seconds"] >= 0 and "params" in att.metrics
        assert np.allclose(att.scores["score"], att.per_prompt.astype(np.float64).mean(0), atol=1e-6)


def _loglik(model, table, zero_layers=()):
    """mean_j log pi(tau_j) per prompt, MLP neurons of `zero_layers` set to 0 (hooks here)."""
    handles = [model.model.layers[l].mlp.down_proj.register_forward_pre_hook(
        lambda m, args: (torch.zeros_like(args[0]),)) for l in zero_layers]
    out: dict[str, list[float]] = {}
    with torch.no_grad():
        for _, r in table.iterrows():
            ids, p = list(r.prompt_ids) + list(r.gen_ids), len(r.prompt_ids)
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
            out.setdefault(r.prompt_id, []).append(
                sum(float(logp[p - 1 + t, tok]) for t, tok in enumerate(r.gen_ids)))
    for h in handles:
        h.remove()
    return np.array([np.mean(v) for v in out.values()])


@pytest.mark.parametrize("arch", ["qwen", "llama"])
def test_ig_likelihood_is_complete_for_the_plain_loglik(arch, request) -> None:
    """sum_i S_i(x) = L(h) - L(h'), L = mean_j log pi(tau_j), h' = 0 on every MLP neuron;
    the outcome rewards play no part (A_j = 1)."""
    model = request.getfixturevalue(arch)
    table = sample_table(model, n_prompts=2, G=3, seed=6)
    att = run(model, table, "neurons", "ig_likelihood", m=32, chunk=32)
    want = _loglik(model, table) - _loglik(model, table, zero_layers=(0, 1))
    assert np.allclose(att.per_prompt.astype(np.float64).sum(1), want, rtol=1e-4)
    other = run(model, table.assign(reward_accuracy=1 - table["reward_accuracy"]), "neurons",
                "ig_likelihood", m=32, chunk=32)
    assert np.array_equal(other.per_prompt, att.per_prompt)
    # one layer on the path: sum over its units = L(h) - L(h' on that layer only)
    one = run(model, table, "neurons", "ig_likelihood", m=32, chunk=32, layers=[1])
    assert np.allclose(one.per_prompt.astype(np.float64).sum(1),
                       _loglik(model, table) - _loglik(model, table, zero_layers=(1,)), rtol=1e-4)


def test_unknown_kind_and_bad_params_are_one_line_errors(qwen, table) -> None:
    allowed = "allowed: act, contrastive, freq, gxa, ig_likelihood, ipg, random"
    for bad in ({"kind": "saliency"}, {"kind": "Act"}):
        with pytest.raises(IPGError, match=f"unknown attribution method '{bad['kind']}'; {allowed}$"):
            MethodSpec.parse(bad)
    with pytest.raises(IPGError, match="unknown attribution method 'saliency'") as err:
        run_attribution(qwen, table, "neurons", {"kind": "saliency"})
    assert "\n" not in str(err.value)
    with pytest.raises(IPGError, match="needs a 'kind'"):
        MethodSpec.parse({"seed": 1})
    with pytest.raises(IPGError, match="ig_likelihood key 'reward' is not settable"):
        MethodSpec.parse({"kind": "ig_likelihood", "reward": "length"})
    with pytest.raises(IPGError, match="unknown IPG config key 'n_steps'"):
        MethodSpec.parse({"kind": "ipg", "n_steps": 3})
    with pytest.raises(IPGError, match="unknown random key 'threshold'"):
        MethodSpec.parse({"kind": "random", "threshold": 1.0})
    spec = MethodSpec.parse({"kind": "freq", "threshold": 0.5})
    assert (spec.kind, spec.params, spec.config.threshold) == ("freq", {"threshold": 0.5}, 0.5)
    assert spec.entry == {"kind": "freq", "threshold": 0.5}


def test_run_method_round_trips(tiny_qwen2_dir, tmp_path) -> None:
    from ipg.models.load import load_model

    model, _ = load_model(tiny_qwen2_dir)
    traj = sample_table(model, n_prompts=2, G=3, max_new=4, seed=2)
    traj = traj.assign(reward_accuracy=[1.0, 0.0, 0.0] * 2, prompt="q", answer="a", text="t", pred="a")
    path = tmp_path / "traj.parquet"
    traj.to_parquet(path)
    out = tmp_path / "out"
    for kind, params, name in [("random", {"seed": 1}, "random_s1"), ("gxa", {"layers": [1]}, None),
                               ("ig_likelihood", {"m": 8, "chunk": 8, "max_residual": None}, None)]:
        metrics = run_method(tiny_qwen2_dir, path, "heads", MethodSpec.parse({"kind": kind, **params}),
                             out / f"{name or kind}.parquet", out / f"{name or kind}.json",
                             progress=False, method_name=name)
        att = read_attribution(out / f"{name or kind}.parquet", out / f"{name or kind}.json")
        assert (att.scores["method"] == (name or kind)).all() and len(att.prompt_ids) == 2
        assert att.metrics["method"] == metrics["method"] == (name or kind)
        saved = json.loads((out / f"{name or kind}.json").read_text())
        assert saved["params"]["kind"] == kind and "versions" in saved and saved["wall_seconds"] >= 0
        again = run_method(tiny_qwen2_dir, path, "heads", MethodSpec.parse({"kind": kind, **params}),
                           out / "again.parquet", out / "again.json", progress=False)
        assert np.allclose(read_attribution(out / "again.parquet").per_prompt, att.per_prompt)
    with pytest.raises(IPGError, match="unknown attribution method 'foo'"):
        MethodSpec.parse({"kind": "foo"})
    with pytest.raises(IPGError, match="takes a MethodSpec"):  # a dict is parsed before, once
        run_method(tiny_qwen2_dir, path, "heads", {"kind": "act"}, out / "x.parquet", out / "x.json")


def test_ipg_config_choices_match_the_engine_registries() -> None:
    """The torch-free IPGConfig spells its allowed values; they must equal the engine's."""
    from ipg.attribution.execution import AUTOCAST_DTYPES
    from ipg.attribution.ipg_config import _CHOICES
    from ipg.attribution.quadrature import QUADRATURES
    from ipg.attribution.reference import REFERENCES
    from ipg.attribution.advantages import ADVANTAGES

    assert _CHOICES["advantage"] == tuple(ADVANTAGES)
    assert _CHOICES["baseline"] == tuple(REFERENCES)
    assert _CHOICES["quadrature"] == tuple(QUADRATURES)
    assert _CHOICES["autocast"] == tuple(AUTOCAST_DTYPES)


PLUGIN = '''"""A method added as one file: |activation| summed, times `scale` (the Act baseline's units)."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ipg.attribution.methods import METHODS, Method, dataclass_keys
from ipg.errors import IPGError


@dataclass
class ScaledActConfig:
    layers: list[int] | None = None
    scale: float = 1.0

    @classmethod
    def from_dict(cls, values):
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise IPGError(f"unknown scaled_act key '{unknown[0]}'; allowed: layers, scale")
        return cls(**values)


def run(model, trajectories, granularity, cfg, sae=None, progress=True, store=None):
    from ipg.attribution.baseline_config import BaselineConfig
    from ipg.attribution.baselines import act

    att = act(model, trajectories, granularity, BaselineConfig(layers=cfg.layers), sae, progress)
    att.scores["score"] *= cfg.scale
    att.per_prompt *= cfg.scale
    return att


METHODS.add("scaled_act", Method("scaled_act", ScaledActConfig.from_dict,
                                 dataclass_keys(ScaledActConfig), run))
'''

PLUGIN_CHECK = """
import json, sys
from ipg.attribution.methods import METHODS
from ipg.config.study import validate_config
from ipg.config.checks import study_schema
from ipg.config.schema import load_schema
from ipg.errors import IPGError

schema = study_schema(load_schema())
entry = schema["properties"]["attribution"]["properties"]["methods"]["additionalProperties"]
study = {"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"]}]}
ok = validate_config({**study, "attribution": {"methods": {"mine": {"kind": "scaled_act", "scale": 2}}}})
try:
    validate_config({**study, "attribution": {"methods": {"mine": {"kind": "scaled_act", "m": 2}}}})
    bad = None
except IPGError as err:
    bad = str(err)
print(json.dumps({"kinds": METHODS.names(), "enum": entry["properties"]["kind"]["enum"],
                  "params": ok["attribution"]["methods"]["mine"], "bad": bad}))
"""


def _plugin_env(tmp_path):
    import os

    (tmp_path / "my_method_plugin.py").write_text(PLUGIN)
    src = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), src]),
            "IPG_PLUGIN_MODULES": "my_method_plugin", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1"}


def test_a_method_added_as_one_module_is_in_the_registry_and_the_schema(tmp_path) -> None:
    env = _plugin_env(tmp_path)
    out = subprocess.run([sys.executable, "-c", PLUGIN_CHECK], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "scaled_act" in got["kinds"] and set(KINDS) < set(got["kinds"])
    assert got["enum"] == got["kinds"]  # the schema's kind enum is the registry
    assert got["params"] == {"kind": "scaled_act", "scale": 2}
    assert got["bad"] == ("config error at attribution.methods.mine: unknown key(s) 'm'; "
                          "allowed keys: kind, layers, scale")


def test_a_method_added_as_one_module_runs_like_the_others(tmp_path, qwen, table, monkeypatch) -> None:
    """The plug-in's function through run_attribution: Act's scores times its scale.

    The registration goes into a copy of the registry that the test restores afterwards, so
    later tests (the schema's kind enum in CATALOGUE.md) see only the shipped methods."""
    import importlib

    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    (tmp_path / "my_method_plugin_run.py").write_text(PLUGIN.replace('"scaled_act"', '"scaled_act_x"'))
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("my_method_plugin_run")
        ref = run(qwen, table, "neurons", "act")
        att = run(qwen, table, "neurons", "scaled_act_x", scale=3.0)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_method_plugin_run", None)
    assert att.metrics["kind"] == "scaled_act_x"
    np.testing.assert_allclose(att.scores["score"], 3.0 * ref.scores["score"].to_numpy(), rtol=1e-12)


def test_a_method_added_as_one_module_is_planned_by_snakemake(tmp_path) -> None:
    """`snakemake -n` on a tiny config plans an attribution job of the plug-in's kind."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "plugin").mkdir()
    env = _plugin_env(tmp_path / "plugin")
    config = {"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["neurons"]}],
              "attribution": {"methods": {"mine": {"kind": "scaled_act", "scale": 2}}},
              "steering": {"ks": [2], "deletion_ks": []}, "sensitivity": {"model": None}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"),
                          "--directory", str(work), "--configfile", str(tmp_path / "c.yaml"), "-n"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=root)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-2000:]
    assert "attribution/tiny-qwen2/chain_sum/neurons/mine" in text
    env.pop("IPG_PLUGIN_MODULES")  # without the plug-in the same config is a one-line error
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"),
                          "--directory", str(work), "--configfile", str(tmp_path / "c.yaml"), "-n"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert out.returncode != 0
    assert "config error at attribution.methods.mine.kind: 'scaled_act' is not allowed" in out.stdout + out.stderr
