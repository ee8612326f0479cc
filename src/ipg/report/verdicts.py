"""Paired verdicts: does IPG's selection beat each control, decided on per-prompt differences.

Input: the steering rows (ipg.study.steering.ROW_COLUMNS, one per condition x seed x prompt, each a
mean over its G samples) of every method job, with the labels model, task, granularity, method,
kind and reward. Every job samples the same held-out prompts with the same seeds (the sampler
seeds each condition x seed call from the seed alone: common random numbers), so two arms pair
on (prompt_id, seed).

One row per comparison (`COLUMNS`); for an arm A = IPG's condition and B = its control:

- diff = mean over prompts and seeds of d[p, s] = y_A[p, s] - y_B[p, s]; diff_lo / diff_hi its
  95% interval: bootstrap over prompts, then seeds within prompts ("hierarchical", ipg.study.statistics)
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
  effect and interval shown, no test, no verdict. "same set" when both arms steer exactly the
  same units (`units_id`, ipg.report.unit_sets: e.g. layers k = 1 for IPG and Act, or IPG's
  signed and magnitude sets): one intervention, not a comparison; no interval, no test, out of
  the Holm families. Length intervals are never zero width either: a constant length
  difference gets the score interval of ipg.study.statistics on length / the cells' largest length.
- design: "confirmatory" when the row's model x task x granularity cell meets
  findings.target_half_width (median half-width of its confirmatory accuracy rows), else
  "smoke test" (its verdicts stay out of the headline); `design_table`. "n/a" for a cell
  without a confirmatory accuracy row that has an interval.

Comparisons (per model x task x granularity, every accuracy-reward IPG method, every steered k):
- ablation (gamma 0) / enhancement (gamma > 1) of the signed top-k vs Act's signed top-k and vs
  the random control = the per-(prompt, seed) mean over every random draw at that k and gamma;
- sign: the signed top-k vs the bottom-k and the top-|k| of the same method, same gamma;
- sharpening (ipg.report.sharpening): each enhanced condition whose accuracy rose vs the
  unsteered model at the entropy-matched temperature: per prompt and seed, the linear
  interpolation between the two adjacent control arms (temperature controls or the baseline)
  whose mean entropies bracket the condition's; the bootstrap resamples all three arms and the
  entropy weight with the prompts. A condition whose accuracy did not rise reads "no gain"; one
  whose entropy lies outside the control curve reads "no bracket" (the note gives the range);
  neither is tested;
- length (length-reward IPG methods): the token length after enhancing (gamma > 1) / suppressing
  (gamma < 1) vs Act's and the random control's same condition, and vs the unsteered model.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, Iterable, NamedTuple

import numpy as np
import pandas as pd

from ipg.errors import IPGError
from ipg.report import sharpening as sharp
from ipg.study.statistics import holm, paired_difference, sign_flip_pvalue

GROUP = ["model", "task", "granularity"]
FAMILIES = ("ablation vs act", "ablation vs random", "enhancement vs act",
            "enhancement vs random", "sign", "sharpening", "length")
COLUMNS = GROUP + ["section", "design", "family", "ipg_method", "question", "versus", "k", "gamma",
                   "metric", "ipg", "other", "diff", "diff_lo", "diff_hi", "half_width", "p",
                   "p_holm", "n_prompts", "n_seeds", "verdict", "note"]
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "IPG better", "IPG worse", "equivalent", "inconclusive"
EXCLUDED, NO_DATA, EXPLORATORY = "excluded: degenerate", "no data", "exploratory"
SAME_SET, NO_GAIN, NO_BRACKET = "same set", "no gain", "no bracket"
CONFIRMATORY, SMOKE = "confirmatory", "smoke test"
STEERED = ("signed", "bottom", "magnitude")
METRICS = ("accuracy", "length", "entropy", "truncated")


@functools.lru_cache(maxsize=1)
def _schema_findings() -> dict[str, Any]:
    from ipg.config.schema import load_schema

    return load_schema()["properties"]["findings"]["properties"]


def defaults() -> dict[str, Any]:
    """The `findings` defaults of the config schema (workflow/schemas/config.schema.yaml), the
    one place they are defined."""
    return {key: copy.deepcopy(spec["default"]) for key, spec in _schema_findings().items()}


def settings(config: dict | None) -> dict[str, Any]:
    """The findings settings: config `findings` over the schema's defaults; unknown families
    are an error."""
    out = {**defaults(), **((config or {}).get("findings") or {})}
    unknown = sorted(set(out["families"]) - set(FAMILIES))
    if unknown:
        raise IPGError(f"config error at findings.families: unknown family {unknown}; "
                       f"allowed: {', '.join(FAMILIES)}")
    return out


def _is_random(method: str, kind: str) -> bool:
    return kind == "random" or str(method).startswith("random")


class Arm(NamedTuple):
    """One arm of a comparison: {metric: [P, S]}, how many methods it pools (random draws), and
    the ids of the unit sets it steered (None where unknown)."""
    mats: dict[str, np.ndarray]
    n: int
    ids: frozenset | None


class _Group:
    """One model x task x granularity's rows, as [prompt, seed] matrices per arm and metric."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.rows = rows
        prompts, p_idx = np.unique(rows["prompt_id"].to_numpy(), return_inverse=True)
        seeds, s_idx = np.unique(rows["seed"].to_numpy(), return_inverse=True)
        self.shape = (len(prompts), len(seeds))
        # a constant length difference is scored on length / this bound (ipg.study.statistics)
        self.length_bound = float(np.nanmax(np.abs(rows["length"].to_numpy(np.float64)))) or 1.0
        self.cells: dict[tuple, dict[str, np.ndarray]] = {}  # condition -> {metric: [P, S]}
        self.ids: dict[tuple, str | None] = {}  # condition -> units_id (None: unknown)
        has_ids = "units_id" in rows.columns
        keys = ["method", "selection", "k", "gamma", "temperature"]
        for key, idx in rows.groupby(keys, sort=False).indices.items():
            mats = {}
            for m in METRICS:
                mat = np.full(self.shape, np.nan)
                mat[p_idx[idx], s_idx[idx]] = rows[m].to_numpy(np.float64)[idx]
                mats[m] = mat
            self.cells[key] = mats
            ids = pd.unique(rows["units_id"].to_numpy()[idx]) if has_ids else [None]
            self.ids[key] = str(ids[0]) if len(ids) == 1 and isinstance(ids[0], str) else None

    def arm(self, methods: Iterable[str], selection: str, k: int | None, gamma: float | None,
            temperature: float | None = None) -> Arm | None:
        """The arm of the given methods' matching condition (per prompt and seed: the random
        control's mean over its draws). At gamma 0 the signed set also reads a method's
        deletion rows (the same condition); the unsteered baseline and the temperature control
        are read from the first method with them."""
        methods = list(methods)
        if selection in ("none", "temperature"):
            for key, mats in self.cells.items():
                if key[1] == selection and (key[0] in methods or selection == "temperature") and (
                        temperature is None or np.isclose(key[4], temperature)):
                    return Arm(mats, 1, frozenset({""}))
            return None
        if k is None or gamma is None:
            return None
        sels = ["signed", "deletion"] if selection == "signed" and gamma == 0 else [selection]
        found = []
        for method in methods:
            for key, mats in self.cells.items():
                if key[0] == method and key[1] in sels and key[2] == k and np.isclose(key[3], gamma):
                    found.append((sels.index(key[1]), method, key))
        by_method: dict[str, tuple] = {}
        for order, method, key in sorted(found, key=lambda x: x[0]):
            by_method.setdefault(method, key)
        if not by_method:
            return None
        keys = list(by_method.values())
        ids = [self.ids[key] for key in keys]
        return Arm({m: np.mean([self.cells[key][m] for key in keys], axis=0) for m in METRICS},
                   len(keys), None if None in ids else frozenset(ids))

    def temperature_points(self, methods: list[str]) -> list[sharp.Point]:
        """The control curve: the unsteered arm and every temperature-control arm."""
        points = []
        base = self.arm(methods, "none", None, None)
        if base is None:  # any job's baseline: every job samples the same prompts and seeds
            base = self.arm(sorted({key[0] for key in self.cells}), "none", None, None)
        if base is not None:
            t = [key[4] for key in self.cells if key[1] == "none"][0]
            points.append(sharp.Point(float(t), "unsteered", base.mats["accuracy"],
                                      base.mats["entropy"]))
        for key, mats in self.cells.items():
            if key[1] == "temperature" and not any(np.isclose(p.temperature, key[4]) for p in points):
                points.append(sharp.Point(float(key[4]), f"T={float(key[4]):g}", mats["accuracy"],
                                          mats["entropy"]))
        return points


def _degenerate(arm: dict[str, np.ndarray], s: dict) -> bool:
    return bool(np.nanmean(arm["accuracy"]) < s["degenerate_accuracy"]
                or np.nanmean(arm["truncated"]) > s["degenerate_truncated"])


def compare(a: np.ndarray, b: np.ndarray, metric: str, s: dict, seed: int = 0,
            length_bound: float | None = None) -> dict[str, Any]:
    """Paired statistics of a - b ([P, S] each; cells missing in either arm are dropped by
    prompt). Accuracy differences are bounded by +-1; length ones by +-length_bound (default:
    the arms' largest |length|), so that a constant difference gets a score interval."""
    keep = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return {}
    scheme = "hierarchical" if a.shape[1] > 1 else "prompts"
    scale = 1.0
    if metric != "accuracy":
        scale = float(length_bound or np.max(np.abs(np.concatenate([a, b])))) or 1.0
    ci = paired_difference(a / scale, b / scale, scheme, 0.95, int(s["n_resamples"]), seed,
                           (-1.0, 1.0))
    lo, hi = ci.lo * scale, ci.hi * scale
    return dict(ipg=float(a.mean()), other=float(b.mean()), diff=float((a - b).mean()),
                diff_lo=lo, diff_hi=hi, half_width=(hi - lo) / 2,
                p=sign_flip_pvalue(a - b, int(s["n_sign_flips"]), seed),
                n_prompts=int(a.shape[0]), n_seeds=int(a.shape[1]))


def decide(row: dict[str, Any], higher_is_better: bool, s: dict) -> str:
    """The verdict of a tested row from its Holm-adjusted p and interval (module docstring)."""
    lo, hi, p = row["diff_lo"], row["diff_hi"], row["p_holm"]
    if p < s["alpha"] and (lo > 0 or hi < 0):
        return BETTER if (lo > 0) == higher_is_better else WORSE
    margin = s["length_margin"] if row["metric"] == "length" else s["equivalence_margin"]
    return EQUIVALENT if -margin < lo and hi < margin else INCONCLUSIVE


def _same_set(a: Arm, b: Arm) -> bool:
    """Both arms steer exactly one and the same (known, non-empty) unit set."""
    return (a.ids is not None and b.ids is not None and len(a.ids) == 1 and a.ids == b.ids
            and "" not in a.ids)


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

    def record(method, family, question, versus, k, gamma, metric, higher, note=""):
        confirmatory = (any(np.isclose(gamma, confirm_g)) and (not ks_wanted or k in ks_wanted)
                        and family in s["families"])
        return dict(base, section="confirmatory" if confirmatory else "exploratory",
                    family=family, ipg_method=method, question=question, versus=versus, k=k,
                    gamma=gamma, metric=metric, note=note, _higher=higher)

    def add(method, family, question, versus, k, gamma, metric, a, b, higher, note=""):
        rec = record(method, family, question, versus, k, gamma, metric, higher, note)
        if a is None or b is None:
            out.append({**rec, "verdict": NO_DATA})
            return
        if _same_set(a, b):
            keep = np.isfinite(a.mats[metric]).all(1) & np.isfinite(b.mats[metric]).all(1)
            rec.update(ipg=float(np.nanmean(a.mats[metric][keep])),
                       other=float(np.nanmean(b.mats[metric][keep])),
                       diff=float(np.mean(a.mats[metric][keep] - b.mats[metric][keep])),
                       n_prompts=int(keep.sum()), n_seeds=g.shape[1], verdict=SAME_SET,
                       note=f"the same {k} units as {versus}: one intervention, not a comparison")
            out.append(rec)
            return
        stats = compare(a.mats[metric], b.mats[metric], metric, s, length_bound=g.length_bound)
        if not stats:
            out.append({**rec, "verdict": NO_DATA})
            return
        rec.update(stats)
        if _degenerate(a.mats, s) and _degenerate(b.mats, s):
            rec["verdict"] = EXCLUDED
        else:
            rec["verdict"] = None if rec["section"] == "confirmatory" else EXPLORATORY
        out.append(rec)

    def controls(k, gamma):
        found = [(m, g.arm([m], "signed", k, gamma)) for m in acts]
        draws = g.arm(randoms, "signed", k, gamma) if randoms else None
        n = draws.n if draws else 0
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
                    out.append(_sharpening(g, m, k, gamma, a, record, s))
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


def _sharpening(g: _Group, m: str, k: int, gamma: float, a: Arm, record, s: dict) -> dict:
    """The sharpening row of one enhanced condition (ipg.report.sharpening)."""
    rec = record(m, "sharpening", "sharpening: enhanced accuracy", "unsteered at equal entropy",
                 k, gamma, "accuracy", True)
    points = g.temperature_points([m])
    unsteered = [p for p in points if p.label == "unsteered"]
    if not unsteered:
        return {**rec, "verdict": NO_DATA, "note": "no unsteered arm"}
    acc_a, ent_a = a.mats["accuracy"], a.mats["entropy"]
    acc, acc0 = float(np.nanmean(acc_a)), float(np.nanmean(unsteered[0].accuracy))
    entropy = float(np.nanmean(ent_a))
    if not acc > acc0:
        return {**rec, "ipg": acc, "verdict": NO_GAIN,
                "note": f"accuracy {acc:.3f} did not rise above the unsteered {acc0:.3f}: "
                        f"nothing to explain (entropy {entropy:.3g}; control curve "
                        f"{sharp.describe_range(points)})"}
    if len(points) < 2:
        return {**rec, "ipg": acc, "verdict": NO_DATA,
                "note": "no temperature control (steering.control_temperatures for "
                        "steering.control_method)"}
    bracket = sharp.find_bracket(points, entropy)
    if bracket is None:
        return {**rec, "ipg": acc, "verdict": NO_BRACKET,
                "note": f"accuracy rose ({acc0:.3f} -> {acc:.3f}) but the entropy {entropy:.3g} "
                        f"lies outside the control curve {sharp.describe_range(points)}: widen "
                        "steering.control_temperatures"}
    stats = sharp.matched_difference(acc_a, ent_a, bracket, int(s["n_resamples"]))
    if not stats:
        return {**rec, "verdict": NO_DATA}
    w = stats.pop("w")
    rec.update(stats, note=f"control interpolated per prompt between {bracket.low.label} and "
                           f"{bracket.high.label} (w={w:.2f} on {bracket.high.label})")
    if _degenerate(a.mats, s):
        rec["verdict"] = EXCLUDED
    else:
        rec["verdict"] = None if rec["section"] == "confirmatory" else EXPLORATORY
    return rec


def build_verdicts(rows: pd.DataFrame, config: dict | None = None,
                   ks_for=None) -> pd.DataFrame:
    """Every comparison of the per-prompt steering `rows` (module docstring), columns COLUMNS.
    ks_for(model, granularity) -> the configured steering ks (confirmatory); None = all.
    An optional `units_id` column (ipg.report.unit_sets) marks arms that steer the same units."""
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
    status = design_table(frame, config)
    status = {tuple(r[:3]): r[3] for r in status[GROUP + ["status"]].itertuples(index=False)}
    frame["design"] = [status.get(tuple(r), "n/a: no tested accuracy row")
                       for r in frame[GROUP].itertuples(index=False)]
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
    return (f"{where} vs {row['versus']}: {row['diff']:+.3f} [{row['diff_lo']:+.3f}, "
            f"{row['diff_hi']:+.3f}], half-width {row['half_width']:.3f}")


TESTED = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE)
UNTESTED = ((SAME_SET, "same set"), (EXCLUDED, "excluded as degenerate"),
            (NO_GAIN, "no accuracy gain to explain"), (NO_BRACKET, "entropy outside the controls"))


def headline(verdicts: pd.DataFrame, config: dict | None = None, design: pd.DataFrame | None = None,
             max_listed: int = 4) -> str:
    """One paragraph from the confirmatory families only (cells whose design meets the target
    half-width): per family how often IPG wins, loses, ties (equivalent) or the study cannot
    tell among the tested rows, the rows not tested (same set, degenerate, ...), the tested
    rows' median achieved half-width, and the decided rows' effect sizes, 95% CIs and
    half-widths (IPG - control)."""
    s = settings(config)
    if verdicts.empty or (verdicts["verdict"] == NO_DATA).all():
        return ("No paired comparison of an accuracy-reward IPG selection with a control could be "
                "made (no per-prompt steering rows for both arms), so the study makes no claim "
                "about IPG's selections.")
    design = design_table(verdicts, config) if design is None else design
    smoke = design[design["status"] == SMOKE]
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
        tested = f[f["verdict"].isin(TESTED)]
        unit = "tokens" if family == "length" else "accuracy"
        text = (f"{family}: IPG better in {c.get(BETTER, 0)} of {len(tested)} tested, worse in "
                f"{c.get(WORSE, 0)}, equivalent in {c.get(EQUIVALENT, 0)}, cannot tell in "
                f"{c.get(INCONCLUSIVE, 0)}")
        if len(tested):
            text += f" (median half-width {tested['half_width'].median():.3g} {unit})"
        text += "".join(f", {words} {c.get(v, 0)}" for v, words in UNTESTED if c.get(v, 0))
        decided = f[f["verdict"].isin([BETTER, WORSE])]
        if len(decided):
            listed = "; ".join(_fmt(r) for _, r in decided.head(max_listed).iterrows())
            more = len(decided) - max_listed
            text += f" [{listed}{f'; {more} more' if more > 0 else ''}]"
        parts.append(text)
    text = ("Confirmatory families (paired IPG - control per prompt and seed, 95% hierarchical "
            f"bootstrap CIs, Holm within each family at alpha {s['alpha']:g}, equivalence "
            f"+-{s['equivalence_margin']:g} accuracy / +-{s['length_margin']:g} tokens): "
            + "; ".join(parts) + ".")
    if skip:
        hw = smoke.set_index(GROUP)["median_half_width"].to_dict()
        text += (" Smoke tests only (median half-width above the target "
                 f"{s['target_half_width']:g}; no claim): "
                 + ", ".join(f"{'/'.join(map(str, k))} ({hw[k]:.3g})" for k in sorted(skip)) + ".")
    return text
