"""Benchmark of the IPG engine: ratios to plain backprop, a naive loop and captum, the shared
prompt cache on few-shot trajectories, quadrature cost to a < 1% residual, achieved over matmul
FLOP/s, time and memory scaling in T, m, N and layers (`ipg bench attribution --only NAME` runs one).

Models: config bench.models (default: the medium random Qwen2, built in memory); a registered
model name (organism, smollm2-135m) is read from its built folder under results/models/.
"""
from ipg.models import MODELS as _REGISTERED

BENCH = config["bench"]


def bench_model_dirs(wildcards):
    return [L.path(L.MODEL, RESULTS, model=m) for m in BENCH["models"] if m in _REGISTERED]


rule bench_attribution:
    input:
        bench_model_dirs,
    output:
        csv=L.BENCH_REPORTS + "/attribution.csv",
        png=L.BENCH_REPORTS + "/attribution.png",
    log:
        L.LOGS + "/bench_attribution.log",
    benchmark:
        L.BENCHMARKS + "/bench_attribution.tsv"
    conda:
        TORCH_ENV
    params:
        models=[L.path(L.MODEL, RESULTS, model=m) if m in _REGISTERED else m for m in BENCH["models"]],
        quick=BENCH["quick"],
    threads: all_cores()
    message:
        "Benchmarking the IPG engine on {params.models} (quick: {params.quick})"
    script:
        "../workflow/scripts/bench_attribution.py"


# The sampler, steering and workflow benches (`ipg bench sampling|steering|workflow`), on
# demand like bench_attribution: `snakemake reports/bench/sampling.csv`. Sampling and
# steering run on the tiny random Qwen2 and, where the study builds it, the organism.
# bench.quick gives their CI-sized forms. The workflow bench dry-runs the test study it
# builds in a temporary folder (quick: a fresh folder, no build).
BENCH_GEN_MODELS = ["random-qwen2-tiny"] + (["organism"] if "organism" in MODELS else [])


def bench_gen_model_args(wildcards):
    return " ".join("--model " + L.path(L.MODEL, RESULTS, model=m) if m in _REGISTERED else f"--model {m}"
                    for m in BENCH_GEN_MODELS)


rule bench_sampling:
    input:
        [L.path(L.MODEL, RESULTS, model=m) for m in BENCH_GEN_MODELS if m in _REGISTERED],
    output:
        csv=L.BENCH_REPORTS + "/sampling.csv",
        png=L.BENCH_REPORTS + "/sampling.png",
    log:
        L.LOGS + "/bench_sampling.log",
    benchmark:
        L.BENCHMARKS + "/bench_sampling.tsv"
    conda:
        TORCH_ENV
    params:
        models=bench_gen_model_args,
        quick="--quick" if BENCH["quick"] else "",
    threads: 1
    message:
        "Benchmarking the batched sampler ({params.models}) {params.quick}"
    shell:
        "python -m ipg bench sampling {params.models} {params.quick} --threads {threads} "
        "--csv {output.csv} --png {output.png} > {log} 2>&1"


rule bench_steering:
    input:
        [L.path(L.MODEL, RESULTS, model=m) for m in BENCH_GEN_MODELS if m in _REGISTERED],
    output:
        csv=L.BENCH_REPORTS + "/steering.csv",
    log:
        L.LOGS + "/bench_steering.log",
    benchmark:
        L.BENCHMARKS + "/bench_steering.tsv"
    conda:
        TORCH_ENV
    params:
        models=bench_gen_model_args,
        quick="--quick" if BENCH["quick"] else "",
    threads: 1
    message:
        "Benchmarking generation under steer(gamma=2) ({params.models}) {params.quick}"
    shell:
        "python -m ipg bench steering {params.models} {params.quick} --threads {threads} "
        "--csv {output.csv} > {log} 2>&1"


rule bench_workflow:
    output:
        csv=L.BENCH_REPORTS + "/workflow.csv",
    log:
        L.LOGS + "/bench_workflow.log",
    benchmark:
        L.BENCHMARKS + "/bench_workflow.tsv"
    conda:
        TORCH_ENV
    params:
        quick="--quick" if BENCH["quick"] else "",
    threads: all_cores()
    message:
        "Benchmarking `snakemake -n` on a finished test study {params.quick}"
    shell:
        "python -m ipg bench workflow {params.quick} --cores {threads} --csv {output.csv} > {log} 2>&1"


# On demand, never part of `make study` (no rule's input): the full engine bench with its
# figure and the machine it ran on (the report quotes its ratios with that date and
# machine), and the paper-scale cost model (ipg.bench.paper_plan): CPU points of the paper
# architecture, then the predicted paper study on an H100-class GPU and the Slurm profile
# check. `snakemake bench_full` / `snakemake paper_cost` (or their output paths).
rule bench_full:
    output:
        csv=L.BENCH_REPORTS + "/full/attribution.csv",
        png=L.BENCH_REPORTS + "/full/attribution.png",
        machine=L.BENCH_REPORTS + "/full/machine.json",
    log:
        L.LOGS + "/bench_full.log",
    conda:
        TORCH_ENV
    params:
        models=" ".join(f"--model {m}" for m in BENCH["models"] if m not in _REGISTERED),
    threads: all_cores()
    message:
        "Full engine bench (not --quick) and the machine it runs on"
    shell:
        "python -m ipg.bench.machine --out {output.machine} && "
        "python -m ipg bench attribution {params.models} --threads {threads} "
        "--csv {output.csv} --png {output.png} > {log} 2>&1"


rule paper_scale_cpu:
    output:
        csv=L.BENCH_REPORTS + "/paper_scale_cpu.csv",
    log:
        L.LOGS + "/paper_scale_cpu.log",
    conda:
        TORCH_ENV
    threads: 1
    message:
        "Paper architecture (random weights) measured on this CPU at reduced depth and length"
    shell:
        "python -m ipg.bench.paper_plan measure --csv {output.csv} --threads {threads} > {log} 2>&1"


rule paper_cost:
    input:
        cpu=L.BENCH_REPORTS + "/paper_scale_cpu.csv",
        config="config/paper.yaml",
        profile="profiles/slurm/config.yaml",
    output:
        csv=L.BENCH_REPORTS + "/paper_cost.csv",
        points=L.BENCH_REPORTS + "/paper_cost_points.csv",
        fit=L.BENCH_REPORTS + "/paper_cost_fit.csv",
        assumptions=L.BENCH_REPORTS + "/paper_cost_assumptions.csv",
        profile=L.BENCH_REPORTS + "/paper_cost_profile.csv",
        md=L.BENCH_REPORTS + "/paper_cost.md",
    log:
        L.LOGS + "/paper_cost.log",
    conda:
        "../envs/report.yaml"
    message:
        "Cost model fitted on the CPU points, predicting the paper study on an H100-class GPU"
    shell:
        "python -m ipg.bench.paper_plan predict --cpu-csv {input.cpu} --config {input.config} "
        "--profile {input.profile} --csv {output.csv} > {log} 2>&1"
