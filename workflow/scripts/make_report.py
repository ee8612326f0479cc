"""Snakemake script: render the study's report (report.md, figures/, tables/ under params.reports_dir).

input: every result file the report reads (REPORT_INPUTS); params: results_dir, reports_dir,
benchmarks_dir, benchmark_files (the current jobs' benchmark TSVs), config (the validated config,
recorded in report.md with its hash);
output: md (report.md), findings (tables/findings.csv), figures (directory).
"""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.report import make_report

    path = make_report(smk.params.results_dir, smk.params.reports_dir, smk.params.benchmarks_dir,
                       config=dict(smk.params.config), bench_csv=smk.params.bench_csv,
                       inputs=list(smk.input),
                       benchmark_files=list(smk.params.benchmark_files))
    print(f"wrote {path}")


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
