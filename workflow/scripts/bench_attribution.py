"""Snakemake script: benchmark the IPG engine (reports/bench/attribution.csv and .png)."""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.bench.attribution import format_table, run_bench

    frame = run_bench(list(smk.params.models), bool(smk.params.quick), smk.output.csv,
                      smk.output.png, threads=smk.threads, log=print)
    print(format_table(frame))


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
