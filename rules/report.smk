"""Stage 6: the study's report (reports/report.md, reports/figures/*.png, reports/tables/*.csv).

REPORT_INPUTS (defined in the Snakefile) lists every result the report reads; pieces a config
does not produce are skipped in the report with a note. `snakemake --report reports/report.html`
shows the figures with the captions in workflow/report/.
"""

from ipg.report.collect import study_benchmarks


rule report:
    input:
        REPORT_INPUTS,
    output:
        md=report("reports/report.md", caption="../workflow/report/report_md.rst", category="Report"),
        findings=report("reports/tables/findings.csv", caption="../workflow/report/findings.rst",
                        category="Report"),
        figures=report(directory("reports/figures"), patterns=["{name}.png"],
                       caption="../workflow/report/figures.rst", category="Figures",
                       labels={"figure": "{name}"}),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    params:
        results_dir=RESULTS,
        reports_dir="reports",
        benchmarks_dir="benchmarks",
        # the current jobs' benchmark files: stale ones of an earlier config stay out of the
        # wall-time table (ipg.report.collect.study_benchmarks mirrors the rules' benchmark: paths)
        benchmark_files=study_benchmarks(config),
        config=lambda w: canonical(config),
    threads: 1
    message:
        "Rendering the study report: findings table, figures and tables -> reports/report.md"
    script:
        "../workflow/scripts/make_report.py"
