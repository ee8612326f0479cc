"""Benchmark of the IPG engine: ratios to plain backprop, a naive loop and captum, memory scaling.

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
        "../envs/torch-cpu.yaml"
    params:
        models=[f"{RESULTS}/models/{m}" if m in _REGISTERED else m for m in BENCH["models"]],
        quick=BENCH["quick"],
    threads: workflow.cores
    message:
        "Benchmarking the IPG engine on {params.models} (quick: {params.quick})"
    script:
        "../workflow/scripts/bench_attribution.py"
