"""Which token positions each attribution covers, and how far the two modes agree
(docs/method.md, "Positions").

`positions: all` interpolates a unit at every position (prompt and generated tokens);
`positions: generated` only at generated tokens, the prompt being encoded once with its real
activations. The second is cheaper (5x on few-shot prompts) but estimates a different
quantity: the unit's role while the model generates, not its total effect (measured Spearman
~0.3 against `all` on few-shot prompts). The report shows, per attribution, the positions it
covers, and wherever both modes exist for one model, task and granularity, their agreement,
so nobody reads generated-only as a free speed-up.

    coverage = positions_table(study.attributions)        # one row per attribution
    agree = agreement_table(study.attributions, k_of)     # one row per (all, generated) pair
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd

COVERS = {"all": "prompt + generated tokens",
          "generated": "generated tokens only (prompt encoded with its real activations)"}
POSITION_COLUMNS = ["model", "task", "granularity", "method", "kind", "positions", "covers"]
AGREEMENT_COLUMNS = ["model", "task", "granularity", "method_all", "method_generated", "n_units",
                     "k", "spearman", "jaccard_topk", "chance_jaccard"]
_KEYS = ["model", "task", "granularity"]


def positions_of(parquet_path: str | Path) -> str | None:
    """The `positions` an attribution ran with (its metrics JSON's config), None if unrecorded."""
    path = Path(parquet_path).with_suffix(".json")
    try:
        config = json.loads(path.read_text()).get("config") or {}
    except (OSError, ValueError):
        return None
    value = config.get("positions")
    return value if value in COVERS else None


def positions_table(attributions: pd.DataFrame) -> pd.DataFrame:
    """One row per attribution: the positions it covers ('not recorded' where its JSON has none)."""
    if attributions.empty:
        return pd.DataFrame(columns=POSITION_COLUMNS)
    pos = [positions_of(p) for p in attributions["path"]]
    frame = attributions[_KEYS + ["method", "kind"]].assign(
        positions=[p or "n/a" for p in pos], covers=[COVERS.get(p, "not recorded") for p in pos])
    return frame.sort_values(_KEYS + ["method"]).reset_index(drop=True)[POSITION_COLUMNS]


def agreement(scores_all: pd.Series, scores_gen: pd.Series, k: int) -> dict[str, float]:
    """Spearman over the common units and the Jaccard of the k most positive units of each
    (with the Jaccard two random k-sets of these units would have on average)."""
    from scipy.stats import spearmanr

    from ipg.study.statistics import expected_random_jaccard, jaccard

    common = scores_all.index.intersection(scores_gen.index)
    a, g = scores_all.loc[common], scores_gen.loc[common]
    k = min(k, len(common))
    rho = spearmanr(a.to_numpy(), g.to_numpy()).statistic if len(common) > 1 else float("nan")
    return {"n_units": len(common), "k": k, "spearman": float(rho),
            "jaccard_topk": jaccard(a.nlargest(k).index, g.nlargest(k).index),
            "chance_jaccard": expected_random_jaccard(len(common), k) if len(common) else float("nan")}


def agreement_table(attributions: pd.DataFrame, k_of: Callable[[str, str], int]) -> pd.DataFrame:
    """For every model/task/granularity with attributions of the same kind in both modes, each
    (all, generated) pair's agreement; k_of(model, granularity) gives the top-k size."""
    from ipg.attribution.table import read_attribution

    rows = []
    if attributions.empty:
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    frame = attributions.assign(positions=[positions_of(p) for p in attributions["path"]])
    for (model, task, gran, _kind), group in frame.groupby(_KEYS + ["kind"], sort=True):
        alls = group[group["positions"] == "all"]
        gens = group[group["positions"] == "generated"]
        for a in alls.itertuples():
            for g in gens.itertuples():
                s_a = read_attribution(a.path).scores.set_index("unit")["score"]
                s_g = read_attribution(g.path).scores.set_index("unit")["score"]
                rows.append({"model": model, "task": task, "granularity": gran, "method_all": a.method,
                             "method_generated": g.method, **agreement(s_a, s_g, k_of(model, gran))})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def position_tables(attributions: pd.DataFrame, k_of: Callable[[str, str], int]) -> dict[str, pd.DataFrame]:
    """The report's two tables (reports/tables/positions.csv, positions_agreement.csv)."""
    return {"positions": positions_table(attributions),
            "positions_agreement": agreement_table(attributions, k_of)}
