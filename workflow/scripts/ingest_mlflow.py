"""Snakemake script: a study run, its stage runs and one run per metrics JSON in MLflow, with the
report's figures on their stage runs (serial: sqlite has one writer). $MLFLOW_TRACKING_URI, when
set, names a tracking server to write to instead of the local mlflow.db."""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.tracking import ingest_to_file, study_uri

    ingest_to_file(list(smk.input.metrics), smk.output[0], study_uri(smk.params.root),
                   smk.params.experiment, dict(smk.params.base), smk.params.results_dir,
                   figures=getattr(smk.input, "figures", None))


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
