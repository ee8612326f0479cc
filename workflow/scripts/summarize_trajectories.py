"""Snakemake script: one JSON with each trajectory file's summary metrics (DVC metrics)."""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.study.trajectories import summarize_files

    summarize_files(list(smk.input), smk.output[0])


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
