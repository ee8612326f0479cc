"""Snakemake script: Jaccard overlap of the top-k units selected on every pair of tasks.

input: tables (attribution parquets, in params.targets order); params: targets
([task, granularity, method] each), top_k ({granularity: k});
output: results/cross_task/{model}.csv (ipg.study.cross_task.COLUMNS).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.cross_task import write_cross_task

    frame = write_cross_task(smk.params.targets, list(smk.input.tables), dict(smk.params.top_k),
                             smk.output[0])
    print(frame.to_string(index=False))


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
