"""Snakemake script: train TopK SAEs on a model's residual stream over its trajectories.

params: sae (an ipg.config.jobs.SaeSettings parsed at DAG-build time, used as is), sae_key (its
dict: the params rerun trigger's record, not read here), seed.
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.sae.run import run_train_sae

    sae = smk.params.sae
    run_train_sae(smk.input.model, smk.input.trajectories, smk.output[0], layers=sae.layers,
                  n_latents=sae.n_latents, k=sae.k, epochs=sae.epochs, seed=smk.params.seed)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
