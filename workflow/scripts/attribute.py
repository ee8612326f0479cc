"""Snakemake script: attribute one (model, task, granularity) with one method (IPG or a baseline)."""
from ipg.scripting import run_script


def main(smk):
    from ipg.attribution.run import run_method
    from ipg.sae.run import sae_dirs

    dirs = sae_dirs(smk.input.sae) if smk.wildcards.granularity == "sae" else ()
    run_method(smk.input.model, smk.input.trajectories, smk.wildcards.granularity,
               dict(smk.params.method), smk.output.table, smk.output.metrics, sae_dirs=dirs,
               method_name=smk.wildcards.method,
               chunk_prompts=smk.config["attribution"]["chunk_prompts"])  # resumable, not a param


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
