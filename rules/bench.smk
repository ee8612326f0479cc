"""Benchmark of the IPG engine: ratios to plain backprop, a naive loop and captum, the shared
prompt cache on few-shot trajectories, quadrature cost to a < 1% residual, achieved over matmul
FLOP/s, time and memory scaling in T, m, N and layers (`ipg bench attribution --only NAME` runs one).

Models: config bench.models (default: the medium random Qwen2, built in memory); a registered
model name (organism, smollm2-135m) is read from its built folder under results/models/.
"""
from ipg.models import MODELS as _REGISTERED

BENCH = config["bench"]


def bench_model_dirs(wildcards):
    return [f"{RESULTS}/models/{m}" for m in BENCH["models"] if m in _REGISTERED]


rule bench_attribution:
    input:
        bench_model_dirs,
    output:
        csv="reports/bench/attribution.csv",
        png="reports/bench/attribution.png",
    log:
        "logs/bench_attribution.log",
    benchmark:
        "benchmarks/bench_attribution.tsv"
    conda:
        TORCH_ENV
    params:
        models=[f"{RESULTS}/models/{m}" if m in _REGISTERED else m for m in BENCH["models"]],
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
    return " ".join(f"--model {RESULTS}/models/{m}" if m in _REGISTERED else f"--model {m}"
                    for m in BENCH_GEN_MODELS)


rule bench_sampling:
    input:
        [f"{RESULTS}/models/{m}" for m in BENCH_GEN_MODELS if m in _REGISTERED],
    output:
        csv="reports/bench/sampling.csv",
        png="reports/bench/sampling.png",
    log:
        "logs/bench_sampling.log",
    benchmark:
        "benchmarks/bench_sampling.tsv"
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
        [f"{RESULTS}/models/{m}" for m in BENCH_GEN_MODELS if m in _REGISTERED],
    output:
        csv="reports/bench/steering.csv",
    log:
        "logs/bench_steering.log",
    benchmark:
        "benchmarks/bench_steering.tsv"
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
        csv="reports/bench/workflow.csv",
    log:
        "logs/bench_workflow.log",
    benchmark:
        "benchmarks/bench_workflow.tsv"
    conda:
        TORCH_ENV
    params:
        quick="--quick" if BENCH["quick"] else "",
    threads: all_cores()
    message:
        "Benchmarking `snakemake -n` on a finished test study {params.quick}"
    shell:
        "python -m ipg bench workflow {params.quick} --cores {threads} --csv {output.csv} > {log} 2>&1"
