"""Snakemake script: attribute one (model, task, granularity) with one method (IPG or a baseline).

params: method (an ipg.attribution.methods.MethodSpec parsed at DAG-build time, used as is),
method_key (its entry as a dict: the params rerun trigger's record, not read here).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.attribution.run import run_method
    from ipg.sae.run import sae_dirs

    dirs = sae_dirs(smk.input.sae) if smk.wildcards.granularity == "sae" else ()
    run_method(smk.input.model, smk.input.trajectories, smk.wildcards.granularity,
               smk.params.method, smk.output.table, smk.output.metrics, sae_dirs=dirs,
               method_name=smk.wildcards.method,
               chunk_prompts=smk.config["attribution"]["chunk_prompts"])  # resumable, not a param


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
