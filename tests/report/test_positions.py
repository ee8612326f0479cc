"""The report's positions tables (ipg.report.positions): what each attribution covers, and the
agreement of positions: all vs generated, checked against rank correlations computed here."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ipg.attribution.table import make_attribution, write_attribution
from ipg.report.collect import load_attributions
from ipg.report.positions import agreement_table, positions_table


def _write(root, method, positions, scores, kind="ipg") -> None:
    units = [f"L0.mlp.n{i}" for i in range(len(scores))]
    att = make_attribution(units, [0] * len(units), list(range(len(units))), np.asarray([scores]),
                           ["p0"], "neurons", method)
    att.metrics = {"kind": kind, "method": method,
                   "config": {"reward": "accuracy", **({"positions": positions} if positions else {})}}
    out = root / "attribution" / "m" / "t" / "neurons"
    out.mkdir(parents=True, exist_ok=True)
    write_attribution(att, out / f"{method}.parquet", out / f"{method}.json")


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)  # no ties in these scores


def test_coverage_and_agreement_of_the_two_modes(tmp_path) -> None:
    rng = np.random.default_rng(0)
    s_all = rng.normal(size=40)
    s_gen = 0.5 * s_all + rng.normal(size=40)  # partly related: a different quantity
    _write(tmp_path, "ipg", "all", s_all)
    _write(tmp_path, "ipg_gen", "generated", s_gen)
    _write(tmp_path, "act", None, rng.normal(size=40), kind="act")
    atts = load_attributions(tmp_path)

    cover = positions_table(atts).set_index("method")
    assert cover.loc["ipg", "covers"] == "prompt + generated tokens"
    assert cover.loc["ipg_gen", "covers"].startswith("generated tokens only")
    assert cover.loc["act", "positions"] == "n/a" and cover.loc["act", "covers"] == "not recorded"

    agree = agreement_table(atts, lambda m, g: 5)
    assert len(agree) == 1
    row = agree.iloc[0]
    assert (row["method_all"], row["method_generated"], row["k"], row["n_units"]) == ("ipg", "ipg_gen", 5, 40)
    want_rho = np.corrcoef(_ranks(s_all), _ranks(s_gen))[0, 1]
    assert abs(row["spearman"] - want_rho) < 1e-12
    top_a, top_g = set(np.argsort(-s_all)[:5]), set(np.argsort(-s_gen)[:5])
    assert row["jaccard_topk"] == len(top_a & top_g) / len(top_a | top_g)
    assert 0 < row["chance_jaccard"] < 1


def test_no_pair_without_both_modes(tmp_path) -> None:
    _write(tmp_path, "ipg", "all", np.arange(6.0))
    atts = load_attributions(tmp_path)
    assert agreement_table(atts, lambda m, g: 2).empty
    assert positions_table(pd.DataFrame(columns=atts.columns)).empty
    # the JSON is what is read: a broken one says 'not recorded', it does not stop the report
    (tmp_path / "attribution" / "m" / "t" / "neurons" / "ipg.json").write_text("{")
    assert positions_table(atts)["covers"].tolist() == ["not recorded"]
