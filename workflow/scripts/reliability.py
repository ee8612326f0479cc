"""Snakemake script: the reliability curve of one model / task / granularity.

input: tables (one IPG attribution over the prompt pool per G, in params.G order);
params: G, ns, k (the steered k), repeats, seed, target_jaccard;
output: curve (csv: G, n, spearman, jaccard with 2.5/97.5 % over repeats, chance_jaccard),
metrics (JSON: the cheapest n x G reaching target_jaccard, or the best reached).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.reliability import write_curve

    tables = dict(zip(smk.params.G, smk.input.tables))
    write_curve(tables, list(smk.params.ns), int(smk.params.k), int(smk.params.repeats),
                int(smk.params.seed), float(smk.params.target_jaccard), smk.output.curve,
                smk.output.metrics)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
