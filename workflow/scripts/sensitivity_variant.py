"""Snakemake script: attribute one sensitivity variant (IPG with some estimator choice changed).

input: model, trajectories (parquet), sae (the SAE root, for the sae granularity);
params: ipg (an ipg.config.jobs.VariantSpec parsed at DAG-build time: an IPG MethodSpec + G,
used as is), ipg_key (its dict: the params rerun trigger's record, not read here);
output: table (parquet), metrics (JSON).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.sae.run import sae_dirs
    from ipg.study.sensitivity import run_variant

    dirs = sae_dirs(smk.input.sae) if smk.wildcards.granularity == "sae" else ()
    run_variant(smk.input.model, smk.input.trajectories, smk.wildcards.granularity,
                smk.params.ipg, smk.output.table, smk.output.metrics, sae_dirs=dirs,
                name=smk.wildcards.variant, progress=False)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
