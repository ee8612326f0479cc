"""Snakemake script: the unsteered model on the held-out split at every seed and control
temperature, once per (model, task); every steering job of that model and task reads these rows.

input: model, data (prepared parquet); params: chat, steering (an ipg.config.jobs.SteeringConfig:
the control method's steering settings), steering_key (its dict: the params rerun trigger's
record, not read here); output: table (rows parquet), metrics (settings + provenance JSON).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.steering import run_unsteered

    run_unsteered(model_dir=smk.input.model, prepared_path=smk.input.data, task=smk.wildcards.task,
                  chat=smk.params.chat, params=smk.params.steering, out_parquet=smk.output.table,
                  metrics_path=smk.output.metrics)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
