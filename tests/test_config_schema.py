"""ipg.config.schema: Snakemake's `--config` strings read as the same YAML in a config file
would be (null included), through the very parser Snakemake uses (snakemake.cli.parse_config)."""
import pytest
from snakemake.cli import parse_config

from ipg.config.study import cross_task_on, load_schema, sensitivity_targets, validate_config
from ipg.config.schema import coerce, normalise_config
from ipg.errors import IPGError

ORG = {"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["neurons", "heads"]}


def from_command_line(*entries: str) -> dict:
    """What `snakemake --config ENTRY ...` merges into the config of a study of ORG."""
    return {"study": [ORG], **parse_config(list(entries))}


def test_snakemake_hands_nested_null_over_as_a_string():
    # the behaviour this module exists for: BaseLoader keeps every nested scalar a string
    assert parse_config(["cross_task={model: null}"]) == {"cross_task": {"model": "null"}}


@pytest.mark.parametrize("spelling", ["null", "~", "Null", "NULL"])
def test_null_in_a_command_line_mapping_turns_a_stage_off(spelling):
    config = validate_config(from_command_line(f"cross_task={{model: {spelling}}}"))
    assert config["cross_task"]["model"] is None and not cross_task_on(config)
    config = validate_config(from_command_line(f"sensitivity={{model: {spelling}, task: {spelling}}}"))
    assert config["sensitivity"]["model"] is None and config["sensitivity"]["task"] is None
    assert sensitivity_targets(config) == []


def test_command_line_null_matches_the_yaml_file():
    import yaml

    line = validate_config(from_command_line("cross_task={model: null, top_k: 5}",
                                             "steering={n_prompts: null, methods: null}"))
    text = "{cross_task: {model: null, top_k: 5}, steering: {n_prompts: null, methods: null}}"
    file = validate_config({"study": [ORG], **yaml.safe_load(text)})
    assert line["cross_task"] == file["cross_task"] and line["steering"] == file["steering"]


def test_a_real_model_name_still_reaches_the_checks():
    # a string-or-null key keeps other strings: the model name is checked as before
    with pytest.raises(IPGError, match=r"cross_task\.model: model 'nul' is not in the study"):
        validate_config(from_command_line("cross_task={model: nul, tasks: [chain_sum, basic_arithmetic]}"))


def test_null_only_where_the_schema_allows_it():
    schema = load_schema()
    # sensitivity.granularity is a plain string (an enum): 'null' stays a string and is rejected
    with pytest.raises(IPGError, match=r"sensitivity\.granularity: 'null' is not allowed"):
        validate_config(from_command_line("sensitivity={granularity: null}"))
    assert coerce("null", {"type": "string"}) == "null"
    assert coerce("null", {"type": ["string", "null"]}) is None
    assert coerce("null", {}) is None  # a free-form mapping's value (no type): YAML's reading
    assert coerce(" null ", {"type": ["integer", "null"]}) is None
    assert coerce("nullable", {"type": ["string", "null"]}) == "nullable"
    # free-form IPG params of a sensitivity variant: null reaches IPGConfig as None
    config = normalise_config(parse_config(["sensitivity={variants: {x: {max_residual: null}}}"]), schema)
    assert config["sensitivity"]["variants"]["x"]["max_residual"] is None


def test_normalise_config_copies_and_fills_defaults():
    raw = {"study": [ORG], "cross_task": {"model": "null"}}
    out = normalise_config(raw, load_schema())
    assert raw["cross_task"]["model"] == "null"  # the input is not modified
    assert out["cross_task"]["model"] is None and out["cross_task"]["tasks"] == []
    assert out["sampling"]["samples_per_prompt"] == 8
