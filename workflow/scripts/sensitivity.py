"""Snakemake script: compare every sensitivity variant with the base run (one csv row each).

input: tables, metrics (one per variant, in params.variants order); params: variants, top_k;
output: summary (csv: variant, spearman, jaccard_topk, completeness_residual, wall_seconds,
...), metrics (JSON).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.sensitivity import write_summary

    runs = {name: (table, metrics) for name, table, metrics
            in zip(smk.params.variants, smk.input.tables, smk.input.metrics)}
    write_summary(runs, int(smk.params.top_k), smk.output.summary, smk.output.metrics)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
