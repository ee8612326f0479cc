"""Paired verdicts: does IPG's selection beat each control, decided on per-prompt differences.

Input: the steering rows (ipg.evaluation.ROW_COLUMNS, one per condition x seed x prompt, each a
mean over its G samples) of every method job, with the labels model, task, granularity, method,
kind and reward. Every job samples the same held-out prompts with the same seeds (the sampler
seeds each condition x seed call from the seed alone: common random numbers), so two arms pair
on (prompt_id, seed).

One row per comparison (`COLUMNS`); for an arm A = IPG's condition and B = its control:

- diff = mean over prompts and seeds of d[p, s] = y_A[p, s] - y_B[p, s]; diff_lo / diff_hi its
  95% interval: bootstrap over prompts, then seeds within prompts ("hierarchical", ipg.statistics)
  with a score interval where the bootstrap degenerates (never zero width for accuracy);
  half_width = (diff_hi - diff_lo) / 2, the achieved precision of the row.
- p: the paired sign-flip p-value of the per-prompt mean differences; p_holm: Holm-adjusted
  within the row's pre-registered family (`FAMILIES`, config `findings.families`), over the
  whole study's confirmatory rows of that family.
- verdict: "IPG better" / "IPG worse" when p_holm < alpha and the interval excludes 0 (better
  = the predicted direction: a larger accuracy drop for ablation, a larger gain for
  enhancement, longer / shorter for length enhance / suppress); otherwise "equivalent" when the
  interval lies inside +-margin (findings.equivalence_margin for accuracy,
  findings.length_margin in tokens for length), else "inconclusive".
  "excluded: degenerate" when both arms are degenerate (mean accuracy < degenerate_accuracy or
  a mean truncated fraction > degenerate_truncated): they cannot show a difference;
  "no data" when an arm is missing; "exploratory" for rows outside the confirmatory grid
  (gamma not in findings.confirmatory_gammas, or k not among the configured steering ks):
  effect and interval shown, no test, no verdict.

Comparisons (per model x task x granularity, every accuracy-reward IPG method, every steered k):
- ablation (gamma 0) / enhancement (gamma > 1) of the signed top-k vs Act's signed top-k and vs
  the random control = the per-(prompt, seed) mean over every random draw at that k and gamma;
- sign: the signed top-k vs the bottom-k and the top-|k| of the same method, same gamma;
- sharpening: each enhanced condition whose accuracy rose vs the unsteered model at the
  entropy-matched temperature: per prompt and seed, the linear interpolation between the two
  temperature-control conditions (or the baseline) whose mean entropies bracket the condition's
  (weight from the mean entropies; both control arms are resampled with the prompts);
- length (length-reward IPG methods): the token length after enhancing (gamma > 1) / suppressing
  (gamma < 1) vs Act's and the random control's same condition, and vs the unsteered model.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from ipg.errors import IPGError
from ipg.statistics import holm, paired_difference, sign_flip_pvalue

GROUP = ["model", "task", "granularity"]
FAMILIES = ("ablation vs act", "ablation vs random", "enhancement vs act",
            "enhancement vs random", "sign", "sharpening", "length")
COLUMNS = GROUP + ["section", "family", "ipg_method", "question", "versus", "k", "gamma", "metric",
                   "ipg", "other", "diff", "diff_lo", "diff_hi", "half_width", "p", "p_holm",
                   "n_prompts", "n_seeds", "verdict", "note"]
DEFAULTS: dict[str, Any] = dict(families=list(FAMILIES), alpha=0.05, equivalence_margin=0.05,
                                length_margin=2.0, confirmatory_gammas=[0.0, 2.0],
                                degenerate_accuracy=0.05, degenerate_truncated=0.5,
                                target_half_width=0.04, n_resamples=2000, n_sign_flips=5000,
                                min_random_draws=5)
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "IPG better", "IPG worse", "equivalent", "inconclusive"
EXCLUDED, NO_DATA, EXPLORATORY = "excluded: degenerate", "no data", "exploratory"
STEERED = ("signed", "bottom", "magnitude")
METRICS = ("accuracy", "length", "entropy", "truncated")


def settings(config: dict | None) -> dict[str, Any]:
    """The findings settings: config `findings` over DEFAULTS; unknown families are an error."""
    out = {**DEFAULTS, **((config or {}).get("findings") or {})}
    unknown = sorted(set(out["families"]) - set(FAMILIES))
    if unknown:
        raise IPGError(f"config error at findings.families: unknown family {unknown}; "
                       f"allowed: {', '.join(FAMILIES)}")
    return out


def _is_random(method: str, kind: str) -> bool:
    return kind == "random" or str(method).startswith("random")


class _Group:
    """One model x task x granularity's rows, as [prompt, seed] matrices per arm and metric."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.rows = rows
        prompts, p_idx = np.unique(rows["prompt_id"].to_numpy(), return_inverse=True)
        seeds, s_idx = np.unique(rows["seed"].to_numpy(), return_inverse=True)
        self.shape = (len(prompts), len(seeds))
        self.cells: dict[tuple, dict[str, np.ndarray]] = {}  # condition -> {metric: [P, S]}
        keys = ["method", "selection", "k", "gamma", "temperature"]
        for key, idx in rows.groupby(keys, sort=False).indices.items():
            mats = {}
            for m in METRICS:
                mat = np.full(self.shape, np.nan)
                mat[p_idx[idx], s_idx[idx]] = rows[m].to_numpy(np.float64)[idx]
                mats[m] = mat
            self.cells[key] = mats

    def arm(self, methods: Iterable[str], selection: str, k: int | None, gamma: float | None,
            temperature: float | None = None) -> tuple[dict[str, np.ndarray], int] | None:
        """{metric: [P, S]} averaged over the given methods' matching condition (per prompt and
        seed: the random control's mean over draws), and the number of methods found. At
        gamma 0 the signed set also reads a method's deletion rows (the same condition); the
        unsteered baseline and the temperature control are read from the first method with them."""
        methods = list(methods)
        if selection in ("none", "temperature"):
            for key, mats in self.cells.items():
                if key[1] == selection and (key[0] in methods or selection == "temperature") and (
                        temperature is None or np.isclose(key[4], temperature)):
                    return mats, 1
            return None
        if k is None or gamma is None:
            return None
        sels = ["signed", "deletion"] if selection == "signed" and gamma == 0 else [selection]
        found = []
        for method in methods:
            for key, mats in self.cells.items():
                if key[0] == method and key[1] in sels and key[2] == k and np.isclose(key[3], gamma):
                    found.append((sels.index(key[1]), method, mats))
        by_method = {}
        for order, method, mats in sorted(found, key=lambda x: x[0]):
            by_method.setdefault(method, mats)
        if not by_method:
            return None
        arms = list(by_method.values())
        return {m: np.mean([a[m] for a in arms], axis=0) for m in METRICS}, len(arms)


def _degenerate(arm: dict[str, np.ndarray], s: dict) -> bool:
    return bool(np.nanmean(arm["accuracy"]) < s["degenerate_accuracy"]
                or np.nanmean(arm["truncated"]) > s["degenerate_truncated"])


def compare(a: np.ndarray, b: np.ndarray, metric: str, s: dict, seed: int = 0) -> dict[str, Any]:
    """Paired statistics of a - b ([P, S] each; cells missing in either arm are dropped by prompt)."""
    keep = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return {}
    scheme = "hierarchical" if a.shape[1] > 1 else "prompts"
    bounds = (-1.0, 1.0) if metric == "accuracy" else None
    ci = paired_difference(a, b, scheme, 0.95, int(s["n_resamples"]), seed, bounds)
    return dict(ipg=float(a.mean()), other=float(b.mean()), diff=ci.mean, diff_lo=ci.lo,
                diff_hi=ci.hi, half_width=(ci.hi - ci.lo) / 2,
                p=sign_flip_pvalue(a - b, int(s["n_sign_flips"]), seed),
                n_prompts=int(a.shape[0]), n_seeds=int(a.shape[1]))


def decide(row: dict[str, Any], higher_is_better: bool, s: dict) -> str:
    """The verdict of a tested row from its Holm-adjusted p and interval (module docstring)."""
    lo, hi, p = row["diff_lo"], row["diff_hi"], row["p_holm"]
    if p < s["alpha"] and (lo > 0 or hi < 0):
        return BETTER if (lo > 0) == higher_is_better else WORSE
    margin = s["length_margin"] if row["metric"] == "length" else s["equivalence_margin"]
    return EQUIVALENT if -margin < lo and hi < margin else INCONCLUSIVE


def _bracket(group: _Group, methods: list[str], entropy: float):
    """The two control conditions (temperature rows or the baseline) whose mean entropies
    bracket `entropy`, and the interpolation weight of the upper one; None outside their range."""
    points = []
    base = group.arm(methods, "none", None, None)
    if base is not None:
        points.append((float(np.nanmean(base[0]["entropy"])), base[0], "unsteered"))
    ctrl = group.rows[group.rows["selection"] == "temperature"]
    for t in sorted(ctrl["temperature"].unique()):
        arm = group.arm([], "temperature", None, None, float(t))
        if arm is not None:
            points.append((float(np.nanmean(arm[0]["entropy"])), arm[0], f"T={float(t):g}"))
    points.sort(key=lambda x: x[0])
    for (h0, a0, n0), (h1, a1, n1) in zip(points, points[1:]):
        if h0 <= entropy <= h1 and h1 > h0:
            w = (entropy - h0) / (h1 - h0)
            return {m: (1 - w) * a0[m] + w * a1[m] for m in a0}, f"{n0}..{n1} (w={w:.2f})"
    return None


def _group_rows(key: tuple, rows: pd.DataFrame, s: dict, ks_wanted: list[int]) -> list[dict]:
    base = dict(zip(GROUP, key))
    g = _Group(rows)
    meta = rows.drop_duplicates("method").set_index("method")
    kinds, rewards = meta["kind"].to_dict(), meta["reward"].to_dict()
    randoms = [m for m in kinds if _is_random(m, kinds[m])]
    acts = [m for m in kinds if kinds[m] == "act"]
    ipgs = [m for m in kinds if kinds[m] == "ipg" and rewards.get(m) == "accuracy"]
    lengths = [m for m in kinds if kinds[m] == "ipg" and rewards.get(m) == "length"]
    grid = rows[rows["selection"].isin(STEERED)]
    ks = sorted(int(k) for k in grid["k"].unique() if int(k) > 0)
    gammas = sorted(float(x) for x in grid["gamma"].unique())
    confirm_g = [float(x) for x in s["confirmatory_gammas"]]
    out: list[dict] = []

    def add(method, family, question, versus, k, gamma, metric, a, b, higher, note=""):
        confirmatory = (any(np.isclose(gamma, confirm_g)) and (not ks_wanted or k in ks_wanted)
                        and family in s["families"])
        rec = dict(base, section="confirmatory" if confirmatory else "exploratory", family=family,
                   ipg_method=method, question=question, versus=versus, k=k, gamma=gamma,
                   metric=metric, note=note, _higher=higher)
        if a is None or b is None:
            out.append({**rec, "verdict": NO_DATA})
            return
        stats = compare(a[0][metric], b[0][metric], metric, s)
        if not stats:
            out.append({**rec, "verdict": NO_DATA})
            return
        rec.update(stats)
        if _degenerate(a[0], s) and _degenerate(b[0], s):
            rec.update(verdict=EXCLUDED, section=rec["section"])
        else:
            rec["verdict"] = None if confirmatory else EXPLORATORY
        out.append(rec)

    def controls(k, gamma):
        found = [(m, g.arm([m], "signed", k, gamma)) for m in acts]
        draws = g.arm(randoms, "signed", k, gamma) if randoms else None
        n = draws[1] if draws else 0
        if n and n < int(s["min_random_draws"]):  # one draw is one arbitrary set, not the control
            return found, (f"random ({n} draw{'s' * (n != 1)} < {s['min_random_draws']})", None)
        return found, (f"random ({n} draw{'s' * (n != 1)})" if n else "random", draws)

    for m in ipgs:
        for k in ks:
            for gamma in gammas:
                if 0 < gamma <= 1:
                    continue
                phase = "ablation" if gamma == 0 else "enhancement"
                higher = phase == "enhancement"
                a = g.arm([m], "signed", k, gamma)
                acts_found, (rlabel, rarm) = controls(k, gamma)
                q = f"{phase}: accuracy {'drop' if phase == 'ablation' else 'gain'}"
                for act, arm in acts_found or [("act", None)]:
                    add(m, f"{phase} vs act", q, act, k, gamma, "accuracy", a, arm, higher)
                add(m, f"{phase} vs random", q, rlabel, k, gamma, "accuracy", a, rarm, higher)
                for sel in ("bottom", "magnitude"):
                    add(m, "sign", f"sign, {phase}", f"{m} {sel}-k", k, gamma, "accuracy", a,
                        g.arm([m], sel, k, gamma), higher)
                if phase == "enhancement" and a is not None:
                    out.extend(_sharpening(g, m, k, gamma, a, add, base, s))
    for m in lengths:
        for k in ks:
            for gamma in gammas:
                if gamma == 1:
                    continue
                higher = gamma > 1
                q = "length: enhance -> longer" if higher else "length: suppress -> shorter"
                a = g.arm([m], "signed", k, gamma)
                acts_found, (rlabel, rarm) = controls(k, gamma)
                for act, arm in acts_found or [("act", None)]:
                    add(m, "length", q, act, k, gamma, "length", a, arm, higher)
                add(m, "length", q, rlabel, k, gamma, "length", a, rarm, higher)
                add(m, "length", q, "unsteered", k, gamma, "length", a,
                    g.arm([m], "none", None, None), higher)
    return out


def _sharpening(g: _Group, m: str, k: int, gamma: float, a, add, base: dict, s: dict) -> list:
    """The sharpening row of one enhanced condition (added through `add`; returns [])."""
    unsteered = g.arm([m], "none", None, None)
    q, versus = "sharpening: enhanced accuracy", "unsteered at equal entropy"
    if unsteered is None:
        add(m, "sharpening", q, versus, k, gamma, "accuracy", a, None, True)
        return []
    rose = np.nanmean(a[0]["accuracy"]) > np.nanmean(unsteered[0]["accuracy"])
    if not rose:
        add(m, "sharpening", q, versus, k, gamma, "accuracy", a, None, True,
            note="no accuracy gain to explain")
        return []
    matched = _bracket(g, [m], float(np.nanmean(a[0]["entropy"])))
    if matched is None:
        add(m, "sharpening", q, versus, k, gamma, "accuracy", a, None, True,
            note="entropy outside the temperature controls' range")
        return []
    add(m, "sharpening", q, versus, k, gamma, "accuracy", a, (matched[0], 1), True,
        note=f"control interpolated between {matched[1]}")
    return []


def build_verdicts(rows: pd.DataFrame, config: dict | None = None,
                   ks_for=None) -> pd.DataFrame:
    """Every comparison of the per-prompt steering `rows` (module docstring), columns COLUMNS.
    ks_for(model, granularity) -> the configured steering ks (confirmatory); None = all."""
    s = settings(config)
    need = GROUP + ["method", "kind", "reward", "selection", "k", "gamma", "temperature", "seed",
                    "prompt_id", "accuracy", "length", "entropy", "truncated"]
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise IPGError(f"per-prompt steering rows lack column(s) {missing}; pass the "
                       "results/intervention/.../{method}.parquet rows with their labels")
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.assign(gamma=rows["gamma"].astype(float), k=rows["k"].astype(int),
                       temperature=rows["temperature"].astype(float))
    out = []
    for key, group in rows.groupby(GROUP, sort=True):
        wanted = list(ks_for(key[0], key[2])) if ks_for else []
        out.extend(_group_rows(key, group, s, wanted))
    frame = pd.DataFrame(out)
    for col in COLUMNS:
        if col not in frame.columns:
            frame[col] = np.nan
    frame["p_holm"] = np.nan
    tested = frame["verdict"].isna()
    for family in s["families"]:
        idx = frame.index[tested & (frame["family"] == family)]
        frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p"].to_numpy())
    for i in frame.index[tested]:
        frame.at[i, "verdict"] = decide(frame.loc[i].to_dict(), bool(frame.at[i, "_higher"]), s)
    return frame[COLUMNS]


def detectable_effect(half_width: float, family_size: int, alpha: float = 0.05,
                      power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at Bonferroni level alpha / family_size
    (Holm's first step) detects with the given power, for an estimate whose 95% interval has
    this half-width (normal approximation: SE = half_width / 1.96)."""
    from scipy.stats import norm

    se = half_width / norm.ppf(0.975)
    return float((norm.ppf(1 - alpha / (2 * max(family_size, 1))) + norm.ppf(power)) * se)


def design_table(verdicts: pd.DataFrame, config: dict | None = None) -> pd.DataFrame:
    """Per model x task x granularity: prompts, seeds, the confirmatory rows' median achieved
    95% half-width (accuracy rows), the effect they can detect with 80% power in the largest
    family, and the status: "confirmatory" when the median half-width meets
    findings.target_half_width, else "smoke test" (its verdicts stay out of the headline)."""
    s = settings(config)
    cols = GROUP + ["n_prompts", "n_seeds", "rows", "median_half_width", "detectable_effect", "status"]
    conf = verdicts[(verdicts["section"] == "confirmatory") & (verdicts["metric"] == "accuracy")
                    & verdicts["half_width"].notna()]
    if conf.empty:
        return pd.DataFrame(columns=cols)
    tested = conf[conf["p_holm"].notna()]
    family_size = int(tested.groupby("family").size().max()) if len(tested) else 1
    out = []
    for key, g in conf.groupby(GROUP, sort=True):
        hw = float(g["half_width"].median())
        out.append(dict(zip(GROUP, key), n_prompts=int(g["n_prompts"].max()),
                        n_seeds=int(g["n_seeds"].max()), rows=len(g), median_half_width=hw,
                        detectable_effect=detectable_effect(hw, family_size, s["alpha"]),
                        status="confirmatory" if hw <= s["target_half_width"] else "smoke test"))
    return pd.DataFrame(out, columns=cols)


def _fmt(row) -> str:
    where = f"{row['model']}/{row['granularity']} {row['ipg_method']} k={int(row['k'])} gamma={row['gamma']:g}"
    return f"{where} vs {row['versus']}: {row['diff']:+.3f} [{row['diff_lo']:+.3f}, {row['diff_hi']:+.3f}]"


def headline(verdicts: pd.DataFrame, config: dict | None = None, design: pd.DataFrame | None = None,
             max_listed: int = 4) -> str:
    """One paragraph from the confirmatory families only (models whose design meets the target
    half-width): per family how often IPG wins, loses, ties (equivalent) or the study cannot
    tell, with the decided rows' effect sizes and 95% CIs (IPG - control)."""
    s = settings(config)
    if verdicts.empty or (verdicts["verdict"] == NO_DATA).all():
        return ("No paired comparison of an accuracy-reward IPG selection with a control could be "
                "made (no per-prompt steering rows for both arms), so the study makes no claim "
                "about IPG's selections.")
    design = design_table(verdicts, config) if design is None else design
    smoke = design[design["status"] == "smoke test"]
    skip = set(map(tuple, smoke[GROUP].to_numpy())) if len(smoke) else set()
    conf = verdicts[(verdicts["section"] == "confirmatory") & (verdicts["verdict"] != NO_DATA)]
    conf = conf[[tuple(r) not in skip for r in conf[GROUP].to_numpy()]]
    if conf.empty:
        return ("No confirmatory comparison reached the design's precision (target 95% half-width "
                f"{s['target_half_width']:g}), so the study makes no confirmatory claim; see the "
                "exploratory section.")
    parts = []
    for family in s["families"]:
        f = conf[conf["family"] == family]
        if f.empty:
            continue
        c = f["verdict"].value_counts()
        text = (f"{family}: IPG better in {c.get(BETTER, 0)} of {len(f)}, worse in {c.get(WORSE, 0)}, "
                f"equivalent in {c.get(EQUIVALENT, 0)}, cannot tell in {c.get(INCONCLUSIVE, 0)}"
                + (f", excluded as degenerate {c.get(EXCLUDED, 0)}" if c.get(EXCLUDED, 0) else ""))
        decided = f[f["verdict"].isin([BETTER, WORSE])]
        if len(decided):
            listed = "; ".join(_fmt(r) for _, r in decided.head(max_listed).iterrows())
            more = len(decided) - max_listed
            text += f" ({listed}{f'; {more} more' if more > 0 else ''})"
        parts.append(text)
    text = ("Confirmatory families (paired IPG - control per prompt and seed, 95% hierarchical "
            f"bootstrap CIs, Holm within each family at alpha {s['alpha']:g}, equivalence "
            f"+-{s['equivalence_margin']:g} accuracy / +-{s['length_margin']:g} tokens): "
            + "; ".join(parts) + ".")
    if skip:
        text += (" Smoke tests only (median half-width above the target "
                 f"{s['target_half_width']:g}; no claim): "
                 + ", ".join("/".join(map(str, k)) for k in sorted(skip)) + ".")
    return text
