"""Per-condition comparisons by CI overlap, on the summary CSVs (the report's findings now come
from the paired per-prompt verdicts of ipg.report.verdicts; this module keeps the steering ks
lookup (`configured_ks`, `reference_k`) the figures use, the entropy-matched control curve,
and the overlap view for summary-only results).

For every model x task x granularity and every steered IPG method with the accuracy reward,
with its top-k (signed) set at every steered k (no k or gamma is picked after the fact):

- ablation (gamma = 0): the paired accuracy difference to the unsteered baseline, d_accuracy,
  vs Act's and the random sets' (random draws pooled: mean, CI = envelope of the draws' CIs);
  a larger drop is better;
- enhancement (every gamma > 1): d_accuracy, a larger gain is better;
- sign: the same for the signed set vs the bottom-k and the top-|k| sets;
- sharpening: the enhanced accuracy vs the temperature control at the same next-token entropy
  (matched_accuracy; interpolated here from any control in the same model/task/granularity);
- length: for IPG with the length reward, d_length after enhancing (every gamma > 1,
  predicted > 0) and after suppressing (every gamma < 1, predicted < 0).

Verdicts compare 95% CIs: disjoint intervals decide, overlapping ones read "not distinguishable".
Every comparison the data allow is a row, wins and losses alike; missing data reads "no data".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ipg.report.collect import RANDOM_LABEL

GROUP = ["model", "task", "granularity"]
COLUMNS = GROUP + ["ipg_method", "question", "versus", "k", "gamma", "metric", "ipg", "ipg_lo",
                   "ipg_hi", "other", "other_lo", "other_hi", "verdict"]
NO_DATA = "no data"
SAME = "not distinguishable"


def is_random(method: str, kind: str = "") -> bool:
    return str(method).startswith(RANDOM_LABEL) or kind == "random"


def reference_k(frame: pd.DataFrame, config: dict | None = None) -> int | None:
    """The first configured steering k when it was evaluated, else the smallest k steered.
    steering.ks may be one list or a mapping {granularity: [k, ...]}, and a study entry may
    override it for its model; both are looked up when `frame` holds one model / granularity."""
    ks = sorted(int(k) for k in frame.loc[frame["selection"].isin(["signed", "bottom", "magnitude"]), "k"].dropna().unique())
    if not ks:
        return None
    wanted = configured_ks(config, _single(frame, "model"), _single(frame, "granularity"))
    return wanted[0] if wanted and wanted[0] in ks else ks[0]


def _single(frame: pd.DataFrame, column: str) -> str | None:
    values = frame[column].dropna().unique() if column in frame.columns else []
    return str(values[0]) if len(values) == 1 else None


def configured_ks(config: dict | None, model: str | None = None, granularity: str | None = None) -> list[int]:
    """The steering ks the config asks for (the model's study-entry override first); [] when
    they depend on a granularity that is not given."""
    ks = ((config or {}).get("steering") or {}).get("ks")
    for entry in (config or {}).get("study") or []:
        if entry.get("model") == model and ((entry.get("steering") or {}).get("ks")):
            override = entry["steering"]["ks"]
            ks = {**ks, **override} if isinstance(ks, dict) and isinstance(override, dict) else override
    if isinstance(ks, dict):
        ks = ks.get(granularity) if granularity else None
    return [int(k) for k in ks or []]


def _rows(frame: pd.DataFrame, methods, selection: str, k, gamma) -> pd.DataFrame:
    """The given methods' rows of one selection, k and gamma. Ablating the signed top-k
    (gamma 0) is also what a deletion curve does at that k, so "signed" at gamma 0 reads the
    deletion rows too (one row per method: the signed one where both exist)."""
    selections = ["signed", "deletion"] if selection == "signed" and gamma == 0 else [selection]
    rows = frame[frame["method"].isin(list(methods)) & frame["selection"].isin(selections)
                 & (frame["k"] == k) & np.isclose(frame["gamma"].astype(float), gamma)]
    order = rows["selection"].map({s: i for i, s in enumerate(selections)})
    return rows.assign(_order=order).sort_values("_order").drop_duplicates("method").drop(columns="_order")


def _value(frame: pd.DataFrame, methods, selection: str, k, gamma, metric: str) -> tuple:
    """(mean, lo, hi) of `metric` (e.g. d_accuracy) over the given methods' matching rows."""
    if gamma is None or k is None:
        return (np.nan,) * 3
    rows = _rows(frame, methods, selection, k, gamma)
    if rows.empty:
        return (np.nan,) * 3
    return (float(rows[metric].mean()), float(rows[f"{metric}_lo"].min()),
            float(rows[f"{metric}_hi"].max()))


def verdict(a: tuple, b: tuple, higher_is_better: bool, words=("IPG better", "IPG worse")) -> str:
    """Decide by CI overlap: a's interval wholly above / below b's, else not distinguishable."""
    if any(pd.isna(x) for x in (*a, *b)):
        return NO_DATA
    above, below = a[1] > b[2], a[2] < b[1]
    if not (above or below):
        return SAME
    return words[0] if above == higher_is_better else words[1]


def control_curve(group: pd.DataFrame) -> pd.DataFrame:
    """Temperature control points (plus the unsteered baseline) of one model/task/granularity,
    sorted by entropy: entropy, accuracy, temperature."""
    ctrl = group[group["selection"].isin(["temperature", "none"])]
    ctrl = ctrl.dropna(subset=["entropy", "accuracy"]).drop_duplicates(["selection", "temperature"])
    return ctrl.sort_values("entropy")[["entropy", "accuracy", "temperature"]]


def matched_accuracy(group: pd.DataFrame, entropy: float) -> float:
    curve = control_curve(group)
    if len(curve) < 2 or pd.isna(entropy) or not (curve["entropy"].min() <= entropy <= curve["entropy"].max()):
        return np.nan
    return float(np.interp(entropy, curve["entropy"], curve["accuracy"]))


def _steered_grid(frame: pd.DataFrame) -> tuple[list[int], list[float], list[float]]:
    """(ks, gammas > 1, gammas < 1) of the signed / bottom / magnitude conditions."""
    grid = frame[frame["selection"].isin(["signed", "bottom", "magnitude"])]
    ks = sorted(int(k) for k in grid["k"].dropna().unique() if int(k) > 0)
    g = sorted(float(x) for x in grid["gamma"].astype(float).unique())
    return ks, [x for x in g if x > 1], [x for x in g if x < 1]


def _group_rows(key: tuple, group: pd.DataFrame, config: dict | None) -> list[dict]:
    """Every steered k x every gamma: no condition is picked after looking at the results."""
    rows = []
    base = dict(zip(GROUP, key))
    ks, ups, downs = _steered_grid(group)
    kinds = group.drop_duplicates("method").set_index("method")["kind"].to_dict()
    rewards = group.drop_duplicates("method").set_index("method")["reward"].to_dict()
    randoms = [m for m in kinds if is_random(m, kinds[m])]
    acts = [m for m in kinds if kinds[m] == "act"]
    ipgs = [m for m in kinds if kinds[m] == "ipg" and rewards.get(m) == "accuracy"]
    lengths = [m for m in kinds if kinds[m] == "ipg" and rewards.get(m) == "length"]

    def add(method, question, versus, k, gamma, metric, a, b, word):
        rows.append({**base, "ipg_method": method, "question": question, "versus": versus,
                     "k": k, "gamma": gamma, "metric": metric, "ipg": a[0], "ipg_lo": a[1],
                     "ipg_hi": a[2], "other": b[0], "other_lo": b[1], "other_hi": b[2],
                     "verdict": word})

    for m in ipgs:
        for k in ks or [None]:
            questions = [("ablation: accuracy drop", 0.0, False)] + [
                ("enhancement: accuracy gain", g, True) for g in (ups or [None])]
            for question, gamma, higher in questions:
                has_gamma = gamma is not None and np.isclose(group["gamma"].astype(float), gamma).any()
                g = gamma if has_gamma else None
                a = _value(group, [m], "signed", k, g, "d_accuracy")
                controls = [(a_, [a_]) for a_ in acts] or [("act", [])]
                drawn = (_rows(group, randoms, "signed", k, g)["method"].nunique()
                         if g is not None and k is not None else 0)
                controls.append((f"random ({drawn} draw{'s' * (drawn != 1)})" if drawn else "random",
                                 randoms))
                for label, methods in controls:
                    b = _value(group, methods, "signed", k, g, "d_accuracy")
                    add(m, question, label, k, g, "d_accuracy", a, b, verdict(a, b, higher))
                for sel in ("bottom", "magnitude"):
                    b = _value(group, [m], sel, k, g, "d_accuracy")
                    add(m, f"sign, {question.split(':')[0]}", f"{m} {sel}-k", k, g, "d_accuracy",
                        a, b, verdict(a, b, higher, ("signed better", "signed worse")))
            # sharpening: each enhanced accuracy vs the temperature control at the same entropy
            for up in ups or [None]:
                row = group[(group["method"] == m) & (group["selection"] == "signed") & (group["k"] == k)]
                row = row[np.isclose(row["gamma"].astype(float), up)] if up is not None else row.iloc[0:0]
                a = (row["accuracy"].iloc[0], row["accuracy_lo"].iloc[0], row["accuracy_hi"].iloc[0]) \
                    if len(row) else (np.nan,) * 3
                matched = np.nan
                if len(row):
                    matched = row["matched_accuracy"].iloc[0] if "matched_accuracy" in row else np.nan
                    if pd.isna(matched):
                        matched = matched_accuracy(group, float(row["entropy"].iloc[0]))
                word = verdict(a, (matched,) * 3, True,
                               ("beats temperature control", "below temperature control"))
                if word == NO_DATA and len(row):
                    word = "no control at this entropy"
                add(m, "sharpening: enhanced accuracy", "temperature control at equal entropy", k,
                    up, "accuracy", a, (matched, np.nan, np.nan), word)

    for m in lengths:
        for k in ks or [None]:
            questions = [("length: enhance -> longer", g, True) for g in (ups or [None])] + [
                ("length: suppress -> shorter", g, False) for g in (downs or [None])]
            for question, gamma, higher in questions:
                a = _value(group, [m], "signed", k, gamma, "d_length")
                add(m, question, "unsteered (0)", k, gamma, "d_length", a, (0.0, 0.0, 0.0),
                    verdict(a, (0.0, 0.0, 0.0), higher, ("as predicted", "opposite")))
    return rows


def build_findings(steering: pd.DataFrame, config: dict | None = None) -> pd.DataFrame:
    """One row per comparison (see the module docstring); columns COLUMNS."""
    if steering.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for key, group in steering.groupby(GROUP, sort=True):
        rows.extend(_group_rows(key, group, config))
    return pd.DataFrame(rows, columns=COLUMNS)


def headline(findings: pd.DataFrame) -> str:
    """One plain paragraph: how often IPG beat, tied or lost to each control."""
    if findings.empty:
        return ("No steering evaluation of an accuracy-reward IPG method was found, so the study "
                "makes no claim about IPG's selections.")
    main = findings[findings["question"].str.startswith(("ablation", "enhancement"))]
    if (main["verdict"] == NO_DATA).all():
        parts = ["No accuracy-reward IPG selection was compared with Act or random sets (no such "
                 "steering evaluation was run), so the study makes no claim about them"]
    else:
        parts = []
    for prefix, name in (("act", "Act"), ("random", "random sets")):
        sel = findings[findings["versus"].str.startswith(prefix)
                       & findings["question"].str.startswith(("ablation", "enhancement"))]
        counts = sel["verdict"].value_counts()
        n = len(sel) - counts.get(NO_DATA, 0)
        if (main["verdict"] == NO_DATA).all():
            break
        parts.append(f"vs {name}: IPG better in {counts.get('IPG better', 0)} of {n} comparisons, "
                     f"not distinguishable in {counts.get(SAME, 0)}, IPG worse in "
                     f"{counts.get('IPG worse', 0)}" + (f" ({counts.get(NO_DATA, 0)} without data)"
                                                       if counts.get(NO_DATA, 0) else ""))
    sharp = findings[findings["question"].str.startswith("sharpening")]["verdict"].value_counts()
    text = "; ".join(parts) + "."
    if sharp.sum():
        text += (f" Enhancement beat the temperature control at equal entropy in "
                 f"{sharp.get('beats temperature control', 0)} of {int(sharp.sum())} cases.")
    length = findings[findings["question"].str.startswith("length")]["verdict"].value_counts()
    if length.sum():
        text += (f" Length-reward units moved length as predicted in {length.get('as predicted', 0)} "
                 f"of {int(length.sum())} cases (opposite in {length.get('opposite', 0)}).")
    return text
