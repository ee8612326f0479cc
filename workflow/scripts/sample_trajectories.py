"""Snakemake script: sample and score G trajectories per attribution prompt."""
from ipg.scripting import run_script


def main(smk):
    from ipg.trajectories import run_sampling

    run_sampling(
        model_dir=smk.input.model, prepared_path=smk.input.data, task=smk.wildcards.task,
        chat=smk.params.chat, split=smk.params.split, seed=int(smk.wildcards.seed),
        sampling=dict(smk.params.sampling), table_path=smk.output.table,
        metrics_path=smk.output.metrics,
    )


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
