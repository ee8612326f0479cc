"""Config validation: defaults filled, one-line errors naming the key and the allowed values."""
from pathlib import Path

import pytest
import yaml

from ipg.config import load_config, load_schema, models_in_study, sampling_for, validate_config
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
