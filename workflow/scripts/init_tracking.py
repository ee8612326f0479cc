"""Snakemake script: create the MLflow store (or use $MLFLOW_TRACKING_URI's server) and the
experiment once, before any job touches them."""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.tracking import init_to_file, study_uri

    init_to_file(smk.output[0], study_uri(smk.params.root), smk.params.experiment)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
