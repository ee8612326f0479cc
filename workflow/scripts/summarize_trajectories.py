"""Snakemake script: one JSON with each trajectory file's summary metrics (DVC metrics)."""
from ipg.scripting import run_script


def main(smk):
    from ipg.trajectories import summarize_files

    summarize_files(list(smk.input), smk.output[0])


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
