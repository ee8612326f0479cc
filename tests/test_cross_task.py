"""ipg.study.cross_task (top-k Jaccard across tasks vs chance) and its config section `cross_task`."""
from fractions import Fraction
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ipg.config.study import cross_task_k, cross_task_targets, validate_config
from ipg.study.cross_task import COLUMNS, cross_task_table, overlap_rows, write_cross_task
from ipg.errors import IPGError

ROOT = Path(__file__).resolve().parents[1]
N = 10
UNITS = [f"L0.mlp.n{i}" for i in range(N)]


def planted(top: list[int]) -> pd.DataFrame:
    """Scores over N units whose signed top-len(top) set is exactly `top` (in any order)."""
    score = [10.0 + i if i in top else -float(i) for i in range(N)]
    return pd.DataFrame({"unit": UNITS, "layer": 0, "score": score})


def chance_by_enumeration(n: int, k: int) -> float:
    """E[J] of two independent uniform k-subsets of n, by listing every pair of subsets."""
    subsets = [set(c) for c in combinations(range(n), k)]
    total = sum(Fraction(len(a & b), len(a | b)) for a in subsets for b in subsets)
    return float(total / len(subsets) ** 2)


def test_planted_sets_give_exact_jaccard_and_chance():
    tables = {"short": planted([0, 1, 2]), "long": planted([1, 2, 3]), "other": planted([7, 8, 9])}
    frame = overlap_rows(tables, 3, "neurons", "ipg")
    assert list(frame.columns) == COLUMNS and len(frame) == 3  # every unordered pair once
    rows = frame.set_index(["task_a", "task_b"])
    # |{0,1,2} n {1,2,3}| = 2, union 4; disjoint from {7,8,9}
    assert rows.loc[("short", "long"), "n_common"] == 2
    assert rows.loc[("short", "long"), "jaccard"] == pytest.approx(0.5)
    assert rows.loc[("short", "other"), "jaccard"] == 0.0 and rows.loc[("long", "other"), "jaccard"] == 0.0
    assert set(rows["k"]) == {3} and set(rows["n_units"]) == {N}
    assert rows["chance"].to_numpy() == pytest.approx(chance_by_enumeration(N, 3), rel=1e-12)
    assert not rows["zero_scores"].any()


def test_k_is_capped_and_identical_sets_overlap_fully():
    rows = overlap_rows({"a": planted([0]), "b": planted([5])}, 50, "heads", "act")
    assert rows["k"].item() == N and rows["jaccard"].item() == 1.0
    assert rows["chance"].item() == pytest.approx(1.0)  # k = n: two "random" sets are all units


def test_all_zero_scores_are_flagged():
    zero = planted([0]).assign(score=0.0)
    rows = overlap_rows({"a": zero, "b": planted([0, 1])}, 2, "neurons", "ipg")
    assert rows["zero_scores"].item()


def test_tables_of_different_units_are_an_error():
    other = planted([0]).assign(unit=[f"L1.mlp.n{i}" for i in range(N)])
    with pytest.raises(IPGError, match="score different units"):
        overlap_rows({"a": planted([0]), "b": other}, 2, "neurons", "ipg")
    with pytest.raises(IPGError, match="two tasks or more"):
        overlap_rows({"a": planted([0])}, 2, "neurons", "ipg")


def test_write_cross_task_from_parquet_tables(tmp_path):
    from ipg.attribution.table import make_attribution, write_attribution
    import numpy as np

    targets, paths = [], []
    for task, top in (("t1", [0, 1]), ("t2", [1, 2])):
        pp = np.tile(np.array(planted(top)["score"]), (3, 1))  # 3 prompts, same scores
        att = make_attribution(UNITS, [0] * N, list(range(N)), pp, ["p0", "p1", "p2"], "neurons", "ipg")
        att.metrics = {"kind": "ipg"}
        path = tmp_path / f"{task}.parquet"
        write_attribution(att, path, tmp_path / f"{task}.json")
        targets.append((task, "neurons", "ipg"))
        paths.append(path)
    frame = write_cross_task(targets, paths, {"neurons": 2}, tmp_path / "out" / "m.csv")
    back = pd.read_csv(tmp_path / "out" / "m.csv")
    assert list(back.columns) == COLUMNS and len(back) == 1
    assert back["jaccard"].item() == pytest.approx(1 / 3) and frame["n_common"].item() == 1
    with pytest.raises(IPGError, match="no top_k for granularity 'neurons'"):
        cross_task_table([(*t, p) for t, p in zip(targets, paths)], {"heads": 2})


# --- the config section --------------------------------------------------------------------

def test_schema_default_is_off():
    cfg = validate_config({})
    assert cfg["cross_task"] is None and cross_task_targets(cfg) == []
    assert cross_task_targets(validate_config({"cross_task": {}})) == []


def test_default_config_targets_and_ks():
    cfg = validate_config(yaml.safe_load((ROOT / "config" / "default.yaml").read_text()))
    sec = cfg["cross_task"]
    targets = cross_task_targets(cfg)
    assert len(targets) == len(sec["tasks"]) * len(sec["granularities"]) * len(sec["methods"])
    assert {t for _, t, _, _ in targets} == set(sec["tasks"]) and len(sec["tasks"]) >= 2
    assert cross_task_k(cfg, "neurons") == 32 and cross_task_k(cfg, "heads") == 4


def test_test_config_adds_no_attribution():
    from ipg.config.study import attribution_targets

    cfg = validate_config(yaml.safe_load((ROOT / "config" / "test.yaml").read_text()))
    assert cross_task_targets(cfg) and set(cross_task_targets(cfg)) <= set(attribution_targets(cfg))


def _cfg(**section):
    return {"study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"], "granularities": ["neurons"]}],
            "cross_task": {"model": "tiny-qwen2", "tasks": ["chain_sum", "basic_arithmetic"],
                           "methods": ["ipg"], **section}}


@pytest.mark.parametrize("section, where", [
    ({"tasks": ["chain_sum", "no_such_task"]}, "cross_task.tasks[1]: unknown task 'no_such_task'"),
    ({"tasks": ["chain_sum"]}, "cross_task.tasks: 1 task(s) given"),
    ({"model": "organism"}, "cross_task.model: model 'organism' is not in the study"),
    ({"methods": ["nope"]}, "cross_task.methods[0]: unknown method 'nope'"),
    ({"granularities": ["sae"], "top_k": 4}, "cross_task.granularities: 'sae' needs the model's SAEs"),
    ({"top_k": {"heads": 2}}, "cross_task.top_k: no k for neurons"),
    ({"top_k": 0}, "cross_task.top_k"),
])
def test_bad_sections_fail_in_one_line(section, where):
    with pytest.raises(IPGError) as err:
        validate_config(_cfg(**section))
    message = str(err.value)
    assert where in message and "\n" not in message


def test_retest_level_from_per_prompt_scores():
    """Attributions with per-prompt scores get the retest level: a task pair sharing all its
    signal agrees as well across tasks as within one; a pair with task-specific signal less.
    Score frames without per-prompt scores get NaN, not an error."""
    import numpy as np

    from ipg.attribution.table import make_attribution

    rng = np.random.default_rng(0)
    n_units, units = 200, [f"L0.mlp.n{i}" for i in range(200)]
    shared, own = rng.normal(size=n_units), rng.normal(size=n_units)

    def att(signal):
        pp = signal + 0.5 * rng.normal(size=(30, n_units))
        return make_attribution(units, [0] * n_units, range(n_units), pp,
                                [f"p{i}" for i in range(30)], "neurons", "ipg")

    tables = {"a": att(shared), "a2": att(shared), "b": att(shared + 1.5 * own)}
    rows = overlap_rows(tables, 20, "neurons", "ipg").set_index(["task_a", "task_b"])
    assert (rows["half"] == 15).all()
    same, diff = rows.loc[("a", "a2")], rows.loc[("a", "b")]
    assert abs(same["cross_jaccard_half"] - same["retest_jaccard_half"]) < 0.1
    assert diff["cross_spearman_half"] < diff["retest_spearman_half"] - 0.2
    frames = overlap_rows({"short": planted([0, 1, 2]), "long": planted([1, 2, 3])}, 3, "neurons", "ipg")
    assert frames["retest_jaccard_half"].isna().all()
