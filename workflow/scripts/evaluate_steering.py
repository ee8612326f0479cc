"""Snakemake script: steer a model with an attribution table's units on the held-out split.

input: model, data (prepared parquet), attribution (parquet), sae (the SAE root, for the sae
granularity), trajectories (the model's attribution trajectories, for mode mean /
mean_ablation), unsteered (the model's unsteered rows, reused where their
settings match); params: chat, steering (an ipg.config.jobs.SteeringConfig parsed at DAG-build
time, used as is), steering_key (its dict: the params rerun trigger's record, not read here);
output: table (rows parquet), summary (csv), metrics (config + provenance JSON).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.steering import run_steering
    from ipg.sae.run import sae_dirs

    dirs = sae_dirs(smk.input.sae) if smk.wildcards.granularity == "sae" else ()
    run_steering(
        model_dir=smk.input.model, prepared_path=smk.input.data,
        attribution_path=smk.input.attribution, task=smk.wildcards.task, chat=smk.params.chat,
        params=smk.params.steering, out_parquet=smk.output.table,
        out_summary_csv=smk.output.summary, metrics_path=smk.output.metrics, sae_dirs=dirs,
        trajectories_path=getattr(smk.input, "trajectories", None),
        unsteered_path=getattr(smk.input, "unsteered", None),
    )


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
