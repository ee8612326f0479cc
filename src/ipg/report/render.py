"""`make_report`: the study's report — reports/report.md, reports/figures/*.png, reports/tables/*.csv.

report.md opens with a headline (the confirmatory families of paired verdicts: where IPG's
selection wins, loses, ties or the study cannot tell, with effect sizes and CIs), then the design
table (achieved precision per model), the findings table (ipg.report.verdicts: confirmatory, then
exploratory rows), every figure with a caption saying what to look
for (a figure whose inputs are absent is skipped with a note), the tables, and the config hash.
"""
from __future__ import annotations

import datetime as _dt
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ipg.report import figures_cross_task as fct
from ipg.report import figures_reliability as frel
from ipg.report import figures_sensitivity as fsens
from ipg.report import figures_steering as fs
from ipg.report import figures_units as fu
from ipg.report.collect import Study, collect, load_retest
from ipg.report.positions import position_tables
from ipg.report.findings import configured_ks, reference_k
from ipg.report.unit_sets import attach_unit_ids
from ipg.report.verdicts import COLUMNS as VERDICT_COLUMNS
from ipg.report.verdicts import build_verdicts, design_table, headline, settings

# name -> (title, caption): the same text as workflow/report/figures.rst (tests check the names)
CAPTIONS = {
    "steering_gamma": ("Accuracy vs gamma", "Accuracy after multiplying the selected units by gamma (gamma > 1 enhances, < 1 suppresses, 0 ablates; the dotted line at gamma = 1 is the unsteered baseline), per method; solid = top-k by signed score, dashed = bottom-k, dotted = top-k by magnitude; bands (on the signed lines) are 95% bootstrap CIs over prompts and seeds. Look for IPG's signed line falling below Act's and the random sets' at gamma 0 and rising above them at large gamma, and for the bottom-k line moving the other way (importance is not direction)."),
    "deletion_curves": ("Deletion curves", "Accuracy as the k highest-scoring units (signed) are ablated (gamma = 0), per method, with 95% CI error bars; k = 0 is the unsteered model and the k axis is logarithmic (each granularity has its own k grid). The random draws are one grey dashed line (their mean) with a grey band (the range of the draws; with a single draw, its 95% CI). A good attribution drops accuracy faster than Act and much faster than random sets of the same size."),
    "unit_layers": ("Where the top units live", "Fraction of each method's top-k units (signed selection, k = the granularity's first steering k, in each panel's title) in each layer, averaged over tasks. Look for whether IPG and Act concentrate in the same layers, and whether random sets spread evenly (as they should)."),
    "jaccard_tasks": ("Overlap across tasks", "Jaccard overlap of the top-k sets selected on different tasks by the same method (mean over task pairs); in brackets the expected Jaccard of two random sets of the same size. Values well above chance mean the method picks task-general units."),
    "jaccard_methods": ("Overlap between methods", "Jaccard overlap between the top-k sets of different methods (and estimator variants) on the same model, task and granularity; chance in each panel's title. High IPG-Act overlap means IPG adds little beyond activation magnitude; overlap with random draws should sit near chance."),
    "transfer": ("Cross-model transfer", "Paired accuracy change (vs the unsteered target) when units selected on the source model steer the target model, next to the target's own selection at the same k and gamma; error bars are 95% CIs. Transfer works where the purple bar matches the green one in sign and size."),
    "length_steering": ("Length steering", "Reasoning length (top) and accuracy (bottom) after scaling the units selected with the length reward by gamma; gamma = 1 is the unsteered model; 95% CI bands. The prediction: enhancing (gamma > 1) lengthens, suppressing shortens; watch the accuracy cost."),
    "completeness": ("Completeness residuals", "Relative completeness residual per prompt, abs(sum_i IPG_i - (Phi(h) - Phi(h'))) / abs(Phi(h) - Phi(h')), its median over the prompts with an advantage, of every IPG run, on a log scale, by granularity; the red line is 1% (the target). The attribution table also lists the residual of the prompts' mean (ill-conditioned when prompts' deltas cancel) and the pooled residual (sum of absolute errors over sum of absolute deltas) that the max_residual bound checks. Large residuals mean too few path points; points at the floor are exactly zero (e.g. no prompt had a nonzero advantage, so there was nothing to attribute)."),
    "bench_targets": ("Engine benchmark vs targets", "Each engine benchmark's value divided by its target threshold (log scale; 1 = on target). For '>=' targets bars right of 1 meet them, for '<=' targets bars left of 1 do; the colour says which way it went."),
    "sensitivity": ("Estimator sensitivity", "For each variant of IPG's estimator (baseline, advantage, samples per prompt G, path points m), its agreement with the study's IPG on the same model, task and granularity: Spearman correlation of the unit scores and Jaccard overlap of the top-k sets (1 = identical), its completeness residual (log scale; red line 1%) and its wall time. Variants near 1 on both agreement panels do not change which units IPG selects."),
    "reliability": ("Attribution reliability (retest curve)", "Agreement of two IPG attributions on disjoint random halves of a pool of attribution-split prompts (config: reliability), against the prompts per half n, one line per samples per prompt G, band: 2.5-97.5 % over random splits. Left: Spearman of the two halves' unit scores; right: Jaccard of their signed top-k sets (k: the largest steered k), with chance (dotted) and the target 0.5 (dashed). Cross-task and cross-variant overlaps are read against this level: two runs of the same method on different prompts of the same task agree only this much."),
    "cross_task_jaccard": ('Overlap across tasks (cross-task stage)', "Jaccard overlap of the signed top-k units one model selects on each pair of tasks (config: cross_task), one tasks x tasks heat map per granularity and method; each panel's title gives k, the number of units n and chance, the expected Jaccard of two random k-sets of n units (the red mark on the colour bar). Values well above chance mean the method picks the same units whatever the task; values near chance, task-specific units."),
    "sharpening_control": ("Sharpening control", "Accuracy vs mean next-token entropy (log scale). The black curve is the unsteered model sampled at the control temperatures (T labels, including the sampling temperature); triangles are steered conditions (up = enhanced, down = suppressed). An enhancement gain is more than sharpening only if its triangle sits above the black curve at the same entropy."),
}


def md_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-markdown table (no extra dependency)."""
    if frame.empty:
        return "_(no rows)_"

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}g}"
        return str(v).replace("|", "\\|").replace("\n", " ")
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def tables(study: Study) -> dict[str, pd.DataFrame]:
    """The report's tables by name (written as reports/tables/{name}.csv)."""
    traj = study.trajectories
    cols = [c for c in ("model", "task", "seed", "n_trajectories", "accuracy", "mean_length",
                        "std_length", "truncated_fraction", "frac_prompts_nonzero_adv_accuracy",
                        "tokens_per_second") if c in traj.columns]
    att = study.attributions.drop(columns=["path"])
    sae_cols = [c for c in ("model", "layer", "n_latents", "k", "fvu", "dead_fraction", "n_tokens",
                            "train_seconds") if c in study.sae.columns]
    wt = study.walltimes
    walltimes = (wt.groupby("rule").agg(jobs=("s", "size"), total_s=("s", "sum"), median_s=("s", "median"),
                                        max_s=("s", "max"), max_rss_mb=("max_rss_mb", "max"))
                 .reset_index().sort_values("total_s", ascending=False) if not wt.empty else wt)
    return {"trajectories": traj[cols].sort_values(cols[:3]) if len(traj) else traj,
            "attribution": att.sort_values(["model", "task", "granularity", "method"]),
            "sae": study.sae[sae_cols] if len(study.sae) else study.sae,
            "sensitivity": fsens.sensitivity_table(study.sensitivity),
            "cross_task": fct.cross_task_table(study.cross_task),
            "reliability": frel.reliability_table(study.reliability),
            "retest": frel.retest_table(study.retest),
            "walltimes": walltimes}


def study_wall_time(walltimes: pd.DataFrame) -> dict[str, float] | None:
    """The study's total time from its jobs' benchmark files: the sum of job seconds, and the
    span from the first job's start to the last job's end. A benchmark file is written when its
    job ends, so end = the file's mtime and start = end - s; the span includes any idle time
    between separate snakemake invocations (and is wrong if the files were copied or touched)."""
    if walltimes.empty:
        return None
    end = walltimes["end"].astype(float)
    return {"jobs": len(walltimes), "sum_s": float(walltimes["s"].sum()),
            "span_s": float(end.max() - (end - walltimes["s"].astype(float)).min())}


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def make_figures(study: Study, fig_dir: Path, config: dict | None) -> dict[str, Path | str]:
    """Every figure: name -> its path, or the reason it was skipped."""
    from ipg.report.plotting import setup

    setup()
    fig_dir.mkdir(parents=True, exist_ok=True)
    steer = study.steering

    def k_of(model: str, granularity: str) -> int:
        """The reference k of one model x granularity: steered, else configured, else 8."""
        rows = steer[(steer["model"] == model) & (steer["granularity"] == granularity)] if len(steer) else steer
        return (reference_k(rows, config) if len(rows) else None) or \
            (configured_ks(config, model, granularity) or [8])[0]

    sets = fu.top_sets(study.attributions, k_of)
    jobs = {
        "steering_gamma": lambda p: fs.steering_gamma(steer, p, config),
        "deletion_curves": lambda p: fs.deletion_curves(steer, p, config),
        "unit_layers": lambda p: fu.unit_layers(sets, p),
        "jaccard_tasks": lambda p: fu.jaccard_tasks(sets, p),
        "jaccard_methods": lambda p: fu.jaccard_methods(sets, p),
        "transfer": lambda p: fs.transfer_bars(study.transfer, steer, p, config),
        "length_steering": lambda p: fs.length_steering(steer, p, config),
        "completeness": lambda p: fu.completeness(study.attributions, p),
        "bench_targets": lambda p: fu.bench_targets(study.bench, p),
        "sensitivity": lambda p: fsens.sensitivity_bars(study.sensitivity, p),
        "reliability": lambda p: frel.reliability_curves(
            study.reliability, p, ((config or {}).get("reliability") or {}).get("target_jaccard", 0.5)),
        "cross_task_jaccard": lambda p: fct.cross_task_heatmap(study.cross_task, p),
        "sharpening_control": lambda p: fs.sharpening_control(steer, p, config),
    }
    if not study.cross_task.empty:  # the cross-task stage supersedes the study tasks' overlap
        jobs.pop("jaccard_tasks")
    with warnings.catch_warnings():  # constant data (e.g. a CI-sized run) warns about flat axes
        warnings.filterwarnings("ignore", message=".*identical low and high.*lims")
        return {name: job(fig_dir / f"{name}.png") for name, job in jobs.items()}


def _findings_view(findings: pd.DataFrame) -> pd.DataFrame:
    def ci(v, lo, hi):
        return "" if pd.isna(v) else f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" if not pd.isna(lo) else f"{v:+.3f}"
    view = findings[["model", "task", "granularity", "design", "family", "ipg_method", "versus", "k",
                     "gamma", "metric"]].copy()
    view["IPG"], view["control"] = findings["ipg"], findings["other"]
    view["IPG - control (95% CI)"] = [ci(*r) for r in findings[["diff", "diff_lo", "diff_hi"]].itertuples(index=False)]
    view["half-width"], view["p (Holm)"] = findings["half_width"], findings["p_holm"]
    view["verdict"], view["note"] = findings["verdict"], findings["note"]
    return view


def _findings_section(findings: pd.DataFrame, design: pd.DataFrame, config: dict | None) -> list[str]:
    s = settings(config)
    conf = findings[findings["section"] == "confirmatory"]
    expl = findings[findings["section"] == "exploratory"]
    return [
        "## Findings", "",
        "Each row is a paired comparison on the same held-out prompts, seeds and sampler stream: "
        "per prompt and seed the difference IPG - control of the metric (accuracy; token length "
        "for the length rows), its mean and 95% CI (bootstrap over prompts, then seeds within "
        "prompts; a score interval where the bootstrap degenerates), the achieved half-width, and a "
        "sign-flip p-value, Holm-adjusted within the row's pre-registered family. The random control "
        "is the per-prompt mean over its draws. Verdicts: *IPG better* / *IPG worse* (adjusted "
        f"p < {s['alpha']:g} and the CI excludes 0, in the predicted direction: a larger drop for "
        "ablation, a larger gain for enhancement, longer / shorter for length), *equivalent* (CI "
        f"inside +-{s['equivalence_margin']:g} accuracy, +-{s['length_margin']:g} tokens), "
        "*inconclusive*; *excluded: degenerate* when both arms are degenerate (accuracy < "
        f"{s['degenerate_accuracy']:g} or more than {s['degenerate_truncated']:.0%} of outputs "
        "truncated); *same set* when both arms steer exactly the same units (one intervention: no "
        "interval, no test); for sharpening, *no gain* (accuracy did not rise: nothing to explain) "
        "and *no bracket* (entropy outside the temperature controls; see the note). None of these "
        "enter the Holm families. The design column says whether the row's cell meets the target "
        "half-width (confirmatory) or is a smoke test (no claim). "
        "Families: " + ", ".join(s["families"]) + ". Confirmatory grid: gamma in "
        + ", ".join(f"{g:g}" for g in s["confirmatory_gammas"]) + " at the configured steering ks; "
        "everything else is exploratory (effect and CI, no test). CSV: `tables/findings.csv`.", "",
        "### Design: achieved precision", "",
        f"Median 95% half-width of each cell's confirmatory accuracy rows (target <= "
        f"{s['target_half_width']:g}) and the effect detectable with 80% power at Holm's first "
        "step in the largest family; cells above the target are smoke tests (no claim).", "",
        md_table(design) if len(design) else "_No paired comparison._", "",
        "### Confirmatory comparisons", "", md_table(_findings_view(conf)) if len(conf) else "_(no rows)_", "",
        "### Exploratory comparisons (no verdicts)", "",
        md_table(_findings_view(expl)) if len(expl) else "_(no rows)_", ""]


def render_markdown(study: Study, findings: pd.DataFrame, figures: dict, tabs: dict,
                    config: dict | None, reports_dir: Path) -> str:
    """report.md's text; `findings` = ipg.report.verdicts.build_verdicts' table."""
    from ipg.config.study import config_hash

    design = design_table(findings, config)
    lines = ["# Integrated Policy Gradient: study report", "",
             f"_Generated {_dt.date.today().isoformat()}; config hash "
             f"`{config_hash(config) if config else 'n/a (no config given)'}`._", "",
             "## Headline", "", headline(findings, config, design), "",
             *_findings_section(findings, design, config), "## Figures", ""]
    for name, result in figures.items():
        title, caption = CAPTIONS[name]
        lines.append(f"### {title}")
        if isinstance(result, Path):
            lines += ["", f"![{title}]({result.relative_to(reports_dir).as_posix()})", "", caption, ""]
        else:
            lines += ["", f"_Skipped: {result}._", ""]
    names = {"trajectories": "Trajectories (unsteered sampling)", "attribution": "Attribution runs",
             "sae": "SAE quality (held-out FVU, dead latents)",
             "sensitivity": "Estimator sensitivity (each IPG variant vs the study's IPG)",
             "cross_task": "Cross-task overlap (top-k Jaccard of every task pair vs chance and the retest level)",
             "reliability": "Reliability curve (split-half Spearman and top-k Jaccard vs n prompts and G)",
             "retest": "Retest level of every attribution (split-half of its own prompts; spearman_full_sb: Spearman-Brown projection to the full prompt set)",
             "walltimes": "Stage wall times (Snakemake benchmarks, seconds)",
             "positions": "Positions each attribution covers (docs/method.md, Positions)",
             "positions_agreement": ("positions: all vs generated on the same model, task and granularity "
                                     "(generated-only estimates a different quantity, not the same one faster)")}
    lines += ["## Tables", ""]
    for name, frame in tabs.items():
        lines += [f"### {names[name]}", "", md_table(frame) if len(frame) else "_No data._", ""]
        total = study_wall_time(study.walltimes) if name == "walltimes" else None
        if total:
            lines += [f"Study total over its {total['jobs']} jobs: {_hms(total['sum_s'])} of job time "
                      f"(sum of the jobs' seconds), {_hms(total['span_s'])} from the first job's start to "
                      "the last job's end (each benchmark file is written when its job ends: end = its "
                      "mtime, start = end - s; idle time between separate snakemake runs counts). "
                      "Only the benchmark files of the current config's jobs are read.", ""]
        lines += [f"CSV: `tables/{name}.csv`.", ""]
    from ipg.report.cost import cost_sections

    lines += cost_sections(reports_dir)
    if config:
        import yaml

        lines += ["## Configuration", "", "```yaml", yaml.safe_dump(config, sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)


def make_report(results_dir: str | Path, reports_dir: str | Path, benchmarks_dir: str | Path = "benchmarks",
                config: dict | None = None, bench_csv: str | Path | None = None,
                inputs: list[str] | None = None, benchmark_files: list[str] | None = None) -> Path:
    """Collect the results, write figures, tables and report.md under reports_dir; return report.md.
    `inputs` / `benchmark_files` (the workflow's) restrict what is read to the current config's."""
    reports = Path(reports_dir)
    study = collect(results_dir, reports, benchmarks_dir, bench_csv, inputs, benchmark_files)
    config = dict(config) if config else None
    study.retest = load_retest(study.attributions, lambda m, g: max(configured_ks(config, m, g) or [8]))
    findings = (build_verdicts(attach_unit_ids(study.steering_rows, study.attributions, config), config,
                               ks_for=lambda m, g: configured_ks(config, m, g))
                if len(study.steering_rows) else pd.DataFrame(columns=VERDICT_COLUMNS))
    (reports / "tables").mkdir(parents=True, exist_ok=True)
    findings.to_csv(reports / "tables" / "findings.csv", index=False)
    tabs = tables(study)
    tabs.update(position_tables(study.attributions, lambda m, g: max(configured_ks(config, m, g) or [8])))
    for name, frame in tabs.items():
        frame.to_csv(reports / "tables" / f"{name}.csv", index=False)
    figures = make_figures(study, reports / "figures", config)
    out = reports / "report.md"
    out.write_text(render_markdown(study, findings, figures, tabs, config, reports))
    return out
