"""Stage 6: the study's report (REPORTS/report.md, figures/*.png, tables/*.csv; REPORTS is
reports/ for the default study, {results_dir}/reports/{config name}/ for another: ipg.workflow.layout).

REPORT_INPUTS (defined in the Snakefile) lists every result the report reads; pieces a config
does not produce are skipped in the report with a note. `snakemake --report reports/report.html`
shows the figures with the captions in workflow/report/.
"""

from ipg.report.collect import study_benchmarks


rule report:
    input:
        REPORT_INPUTS,
    output:
        md=report(f"{REPORTS}/report.md", caption="../workflow/report/report_md.rst", category="Report"),
        findings=report(f"{REPORTS}/tables/findings.csv", caption="../workflow/report/findings.rst",
                        category="Report"),
        figures=report(directory(f"{REPORTS}/figures"), patterns=["{name}.png"],
                       caption="../workflow/report/figures.rst", category="Figures",
                       labels={"figure": "{name}"}),
    log:
        L.LOGS + "/report.log",
    benchmark:
        L.BENCHMARKS + "/report.tsv"
    conda:
        "../envs/report.yaml"
    params:
        results_dir=RESULTS,
        reports_dir=REPORTS,
        benchmarks_dir=L.BENCHMARKS,
        bench_csv=L.BENCH_REPORTS + "/attribution.csv",  # the engine benchmark (rules/bench.smk)
        # the current jobs' benchmark files: stale ones of an earlier config stay out of the
        # wall-time table (ipg.report.collect.study_benchmarks mirrors the rules' benchmark: paths)
        benchmark_files=study_benchmarks(config),
        config=lambda w: canonical(config),
    threads: 1
    message:
        "Rendering the study report: findings table, figures and tables -> " + REPORTS + "/report.md"
    script:
        "../workflow/scripts/make_report.py"
