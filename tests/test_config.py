"""Config validation: defaults filled, one-line errors naming the key and the allowed values."""
from pathlib import Path

import pytest
import yaml

from ipg.config.study import load_config, models_in_study, sampling_for, validate_config
from ipg.config.schema import load_schema
from ipg.errors import IPGError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"]}]}


def walk_properties(schema, path="config"):
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from walk_properties(sub, f"{path}.{key}")
        if isinstance(sub.get("items"), dict):
            yield from walk_properties(sub["items"], f"{path}.{key}[]")


def test_every_schema_key_has_description_and_default():
    schema = load_schema()
    keys = list(walk_properties(schema))
    assert len(keys) > 10
    for where, sub in keys:
        assert sub.get("description"), f"{where} has no description"
        if not where.startswith("config.study[]") or where.count(".") > 1:
            assert "default" in sub or where.endswith((".model", ".tasks")), f"{where} has no default"


@pytest.mark.parametrize("name", ["default.yaml", "test.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert config["study"]


def test_defaults_are_filled():
    config = validate_config(MINIMAL)
    assert config["sampling"]["samples_per_prompt"] == 8
    assert config["data"]["n_heldout"] == 64
    assert config["study"][0]["granularities"] == ["neurons", "heads", "layers"]


@pytest.mark.parametrize("bad, expected", [
    ({**MINIMAL, "bogus": 1}, r"unknown key\(s\) 'bogus'; allowed keys: .*data, .*study"),
    ({**MINIMAL, "sampling": {"temprature": 1.0}}, r"at sampling: unknown key\(s\) 'temprature'; allowed keys: .*temperature"),
    ({**MINIMAL, "seed": "zero"}, r"at seed: 'zero' should be of type integer"),
    ({"study": [{"model": "gpt-9", "tasks": ["chain_sum"]}]}, r"study\[0\]\.model: unknown model 'gpt-9'; allowed: .*smollm2-135m"),
    ({"study": [{"model": "tiny-qwen2", "tasks": ["nope"]}]}, r"study\[0\]\.tasks\[0\]: unknown task 'nope'; allowed: .*chain_sum"),
    ({"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["atoms"]}]}, r"'atoms' is not allowed; allowed values: neurons, heads, layers, sae"),
    ({**MINIMAL, "sampling": {"temperature": 0}}, r"at sampling\.temperature"),
    ({**MINIMAL, "model_params": {"gpt-9": {}}}, r"model_params\.gpt-9: unknown model"),
])
def test_bad_config_is_one_clear_line(bad, expected):
    with pytest.raises(IPGError, match=expected) as info:
        validate_config(bad)
    assert "\n" not in str(info.value)


def test_bad_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: [\n")
    with pytest.raises(IPGError, match="not valid YAML"):
        load_config(bad)


def test_sampling_overrides_and_required_models():
    config = validate_config({"study": [
        {"model": "tiny-qwen2", "tasks": ["chain_sum"], "sampling": {"max_new_tokens": 7}}]})
    assert sampling_for(config, "tiny-qwen2")["max_new_tokens"] == 7
    assert sampling_for(config, "tiny-qwen2")["temperature"] == 1.0
    assert models_in_study(config) == ["tiny-qwen2"]


def test_command_line_strings_become_numbers():
    """Snakemake's --config passes nested values as strings; the schema's types decide."""
    config = validate_config({**MINIMAL, "steering": {"gammas": ["0", "3.5"], "per_layer": "true"},
                              "seed": "3"})
    assert config["steering"]["gammas"] == [0, 3.5]
    assert config["steering"]["per_layer"] is True
    assert config["seed"] == 3
    with pytest.raises(IPGError, match="seed"):
        validate_config({**MINIMAL, "seed": "three"})


ORG = {"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["neurons", "heads", "layers"]}


def test_steering_ks_per_granularity():
    from ipg.config.study import steering_params

    config = validate_config({"study": [ORG], "steering": {"ks": {"heads": [1, 3]}}})
    assert config["steering"]["ks"]["heads"] == [1, 3]  # given
    assert config["steering"]["ks"]["layers"] == [1]  # left out: the schema's per-granularity default
    assert steering_params(config, "tiny-qwen2", "ipg", "heads")["ks"] == [1, 3]
    assert steering_params(config, "tiny-qwen2", "ipg", "neurons")["ks"] == [8, 32]
    flat = validate_config({"study": [ORG], "steering": {"ks": [1, 2], "deletion_ks": [1, 2]}})
    for gran in ("neurons", "heads", "layers"):  # one list for every granularity
        p = steering_params(flat, "tiny-qwen2", "ipg", gran)
        assert p["ks"] == [1, 2] and p["deletion_ks"] == [1, 2]
    # tiny-qwen2 has 2 layers (TINY_CONFIG): k = 5 layers is an error before any job runs, a
    # deletion k of 4 layers is left out of the curve (it ends at all units)
    with pytest.raises(IPGError, match=r"^config error at steering\.ks: k = 5 exceeds the 2 layers"):
        validate_config({"study": [ORG], "steering": {"ks": [2, 5]}})
    curve = validate_config({"study": [ORG], "steering": {"ks": [1], "deletion_ks": [1, 4]}})
    assert steering_params(curve, "tiny-qwen2", "ipg", "layers")["deletion_ks"] == [1]
    assert steering_params(curve, "tiny-qwen2", "ipg", "neurons")["deletion_ks"] == [1, 4]
    # a model's override: a list replaces, a mapping merges per granularity
    over = validate_config({"study": [{**ORG, "steering": {"ks": {"heads": [2]}, "deletion_ks": []}}]})
    assert steering_params(over, "tiny-qwen2", "ipg", "heads")["ks"] == [2]
    assert steering_params(over, "tiny-qwen2", "ipg", "neurons")["ks"] == [8, 32]
    assert steering_params(over, "tiny-qwen2", "ipg", "neurons")["deletion_ks"] == []
    with pytest.raises(IPGError, match=r"steering\.ks"):
        validate_config({"study": [ORG], "steering": {"ks": {"atoms": [1]}}})
    with pytest.raises(IPGError, match=r"steering\.ks\.heads"):
        validate_config({"study": [ORG], "steering": {"ks": {"heads": [0]}}})


def test_deletion_only_methods_and_means():
    from ipg.config.study import needs_means, steering_params, steering_targets, transfer_targets

    config = validate_config({
        "study": [ORG, {**ORG, "model": "tiny-llama"}],
        "attribution": {"methods": {"ipg": {"kind": "ipg"}, "random_s1": {"kind": "random", "seed": 1}}},
        "steering": {"methods": ["ipg"], "deletion_methods": ["random_s1"], "mean_ablation": True},
        "transfer": [{"source": "tiny-qwen2", "target": "tiny-llama"}],
    })
    steered = {(m, g, meth) for m, _, g, meth in steering_targets(config)}
    assert ("tiny-qwen2", "heads", "random_s1") in steered and ("tiny-qwen2", "heads", "ipg") in steered
    assert {t[-1] for t in transfer_targets(config)} == {"ipg"}  # no grid, nothing to transfer
    grid = steering_params(config, "tiny-qwen2", "ipg", "neurons")
    only = steering_params(config, "tiny-qwen2", "random_s1", "neurons")
    assert grid["gammas"] and grid["mean_ablation"] and needs_means(grid)
    assert only["gammas"] == [] and only["ks"] == [] and only["selections"] == ["signed"]
    assert only["deletion_ks"] == grid["deletion_ks"] == [2, 8, 32, 128]
    assert not needs_means(only) and needs_means({"mode": "mean", "mean_ablation": False})
    with pytest.raises(IPGError, match=r"steering\.deletion_methods\[0\]: unknown method 'rnd'"):
        validate_config({"study": [ORG], "steering": {"deletion_methods": ["rnd"]}})


def test_sensitivity_section():
    from ipg.config.study import sensitivity_params, sensitivity_targets, sensitivity_variants

    assert sensitivity_targets(validate_config({"study": [ORG]})) == []  # model null: off
    config = validate_config({
        "study": [{**ORG, "attribution": {"m": 16}}],
        "attribution": {"granularity_params": {"heads": {"baseline": "mean", "m": 64}}},
        "sensitivity": {"model": "tiny-qwen2", "task": "chain_sum", "granularity": "heads",
                        "base": {"reward": "length"}, "variants": {"m8": {"m": 8}, "G2": {"max_samples_per_prompt": 2}}},
    })
    assert sensitivity_targets(config) == [("tiny-qwen2", "chain_sum", "heads")]
    assert sensitivity_variants(config) == ["base", "G2", "m8"]
    # granularity, then model overrides, then base, then the variant
    assert sensitivity_params(config, "base") == {"max_residual": None, "baseline": "mean", "m": 16,
                                                  "reward": "length"}
    assert sensitivity_params(config, "m8")["m"] == 8
    assert sensitivity_params(config, "G2")["max_samples_per_prompt"] == 2
    defaults = validate_config({"study": [ORG], "sensitivity": {"model": "tiny-qwen2", "task": "chain_sum"}})
    assert {"baseline_mean", "baseline_noise", "advantage_grpo", "advantage_raw", "G2", "G4", "m8",
            "m16", "m64"} == set(defaults["sensitivity"]["variants"])
    for bad, match in [
        ({"model": "tiny-qwen2", "task": "basic_arithmetic"}, r"at sensitivity: model 'tiny-qwen2' on task 'basic_arithmetic' is not in the study"),
        ({"model": "tiny-qwen2", "task": "chain_sum", "granularity": "sae"}, r"sensitivity\.granularity: 'sae' is not attributed"),
        ({"model": "tiny-qwen2", "task": "chain_sum", "variants": {"base": {}}}, r"'base' is reserved"),
        ({"modle": "x"}, r"unknown key\(s\) 'modle'"),
    ]:
        with pytest.raises(IPGError, match=match) as info:
            validate_config({"study": [ORG], "sensitivity": bad})
        assert "\n" not in str(info.value)


def test_model_shapes_match_the_built_models() -> None:
    """ModelSpec.shape (used at DAG build) against the units of the model actually built."""
    from ipg.core.units import get_granularity
    from ipg.models import MODELS
    from ipg.models.tiny import tiny_random_model

    params = {"num_hidden_layers": 3, "intermediate_size": 48}
    shape = MODELS.get("tiny-qwen2").shape(params)
    model, _ = tiny_random_model("qwen2", **params)
    for gran in ("neurons", "heads", "layers"):
        g = get_granularity(gran, model)
        built = sum(g.unit_shape(layer)[0] for layer in g.available_layers())
        assert shape.n_units(gran) == built, gran
    assert shape.n_layers == len(get_granularity("layers", model).available_layers()) == 3


def test_sizes_come_from_model_params_and_per_layer_ks() -> None:
    org = {"model": "organism", "tasks": ["organism_arith"], "granularities": ["neurons", "heads"]}
    small = {"organism": {"n_layers": 2}}
    with pytest.raises(IPGError, match=r"^config error at attribution\.methods\.ipg\.layers: layer 3 "
                                       r"is beyond organism's 2 layers"):
        validate_config({"study": [org], "model_params": small,
                         "attribution": {"methods": {"ipg": {"kind": "ipg", "layers": [3]}}}})
    validate_config({"study": [org], "attribution": {"methods": {"ipg": {"kind": "ipg", "layers": [3]}}}})
    with pytest.raises(IPGError, match=r"^config error at study\[0\]\.steering\.ks\.heads: k = 6 "
                                       r"exceeds the 4 heads per layer of organism"):
        validate_config({"study": [{**org, "steering": {"per_layer": True, "ks": {"heads": [6]}}}]})
    smol = {"model": "smollm2-135m", "tasks": ["chain_sum"], "granularities": ["neurons"]}
    with pytest.raises(IPGError, match=r"exceeds the 46080 neurons of smollm2-135m"):
        validate_config({"study": [smol], "steering": {"ks": [46081]}})


def test_group_size_override_and_raw_advantage() -> None:
    entry = {**ORG, "sampling": {"samples_per_prompt": 1}}
    with pytest.raises(IPGError, match=r"^config error at study\[0\]\.sampling\.samples_per_prompt: "
                                       r"G = 1 with the loo advantage"):
        validate_config({"study": [entry]})
    raw = {"methods": {"ipg": {"kind": "ipg", "advantage": "raw"}, "act": {"kind": "act"}}}
    validate_config({"study": [entry], "attribution": raw})  # raw needs no group


def test_check_config_reports_a_nested_typo_in_one_line(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "c.yaml"
    path.write_text("study: [{model: tiny-qwen2, tasks: [chain_sum]}]\n"
                    "attribution: {methods: {ipg_length: {kind: ipg, mm: 8}}}\n")
    out = subprocess.run([sys.executable, "-m", "ipg", "check", "config", "--configfile", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"ipg: error: {path}: config error at attribution.methods.ipg_length: unknown key(s) 'mm'; "
        "allowed keys: advantage, autocast, baseline, checkpoint_layers, chunk, eps, kind, layers, m, "
        "m_max, max_residual, multilayer, pad_id, path, pos_chunk, positions, quadrature, reward, "
        "seed, share_prompt_cache, temperature, tol, traj_chunk"]


def test_exploratory_switch_and_control_selections():
    """steering.exploratory off drops the deletion curve, mean ablation and exploratory gammas;
    on adds exploratory_gammas; non-IPG methods steer control_selections only."""
    from ipg.config.study import steering_params

    config = load_config(ROOT / "config" / "default.yaml")
    off = steering_params(config, "organism", "ipg", "neurons")
    assert off["gammas"] == [0.0, 2.0] and off["deletion_ks"] == [] and not off["mean_ablation"]
    assert off["selections"] == ["signed", "bottom", "magnitude"]
    assert steering_params(config, "organism", "act", "neurons")["selections"] == ["signed"]
    config["steering"].update(exploratory=True, mean_ablation=True)
    on = steering_params(config, "organism", "random_s4", "neurons")
    assert on["gammas"] == [0.0, 0.5, 2.0, 5.0] and on["deletion_ks"] and on["mean_ablation"]
    assert on["n_prompts"] == 640 and on["seeds"] == [0, 1]


def test_transfer_methods_filter_and_typo() -> None:
    """transfer[i].methods keeps only the named methods; an unknown name fails in one line."""
    from ipg.config.study import transfer_targets

    config = load_config(ROOT / "config" / "default.yaml")
    methods = {t[4] for t in transfer_targets(validate_config(config))}
    assert methods == set(config["transfer"][0]["methods"])
    config["transfer"][0]["methods"] = ["ipgg"]
    with pytest.raises(IPGError, match=r"^config error at transfer\[0\]\.methods\[0\]: unknown method 'ipgg'"):
        validate_config(config)


def test_method_selections_override_one_methods_selections() -> None:
    """steering.method_selections: ipg_length steers its signed set only (the length family's
    one read); IPG keeps the sign family's three sets, Act the control selections."""
    from ipg.config.study import steering_params

    config = load_config(ROOT / "config" / "default.yaml")
    assert config["steering"]["method_selections"] == {"ipg_length": ["signed"]}
    got = {m: steering_params(config, "organism", m, "neurons")["selections"]
           for m in ("ipg", "ipg_length", "act")}
    assert got == {"ipg": ["signed", "bottom", "magnitude"], "ipg_length": ["signed"],
                   "act": ["signed"]}
    bad = {**config, "steering": {**config["steering"], "method_selections": {"ipg_lenght": ["signed"]}}}
    with pytest.raises(IPGError, match=r"steering\.method_selections\.ipg_lenght: unknown method"):
        validate_config(bad)
