"""Snakemake script: prepare one task's attribution and held-out splits."""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.tasks.prepare import prepare_task, write_prepared

    p = smk.params
    frame = prepare_task(smk.wildcards.task, p.n_attribution, p.n_heldout, p.seed, dict(p.task_params))
    write_prepared(frame, smk.output[0])


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
