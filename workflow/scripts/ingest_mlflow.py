"""Snakemake script: one MLflow run per metrics JSON (serial: sqlite has one writer)."""
from ipg.scripting import run_script


def main(smk):
    from ipg.tracking import ingest_to_file, tracking_uri

    ingest_to_file(list(smk.input.metrics), smk.output[0], tracking_uri(smk.params.root),
                   smk.params.experiment, dict(smk.params.base), smk.params.results_dir)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
