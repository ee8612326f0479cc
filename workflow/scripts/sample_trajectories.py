"""Snakemake script: sample and score G trajectories per attribution prompt.

params: sampling (an ipg.config.jobs.SamplingSettings parsed at DAG-build time, used as is),
sampling_key (its dict: the params rerun trigger's record, not read here), chat, split.
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.trajectories import run_sampling

    run_sampling(
        model_dir=smk.input.model, prepared_path=smk.input.data, task=smk.wildcards.task,
        chat=smk.params.chat, split=smk.params.split, seed=int(smk.wildcards.seed),
        sampling=smk.params.sampling, table_path=smk.output.table,
        metrics_path=smk.output.metrics,
    )


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
