"""Stage 3: sample G trajectories per attribution prompt and score them with outcome rewards."""


rule sample_trajectories:
    input:
        model=RESULTS + "/models/{model}",
        data="data/prepared/{task}.parquet",
    output:
        table=RESULTS + "/trajectories/{model}/{task}/{seed}.parquet",
        metrics=RESULTS + "/trajectories/{model}/{task}/{seed}.json",
    log:
        "logs/sample_trajectories/{model}/{task}/{seed}.log",
    benchmark:
        "benchmarks/sample_trajectories/{model}/{task}/{seed}.tsv"
    conda:
        TORCH_ENV
    params:
        sampling=model_sampling,
        chat=model_chat,
        split="attribution",
    threads: model_threads
    message:
        "Sampling trajectories: {wildcards.model} on {wildcards.task}, seed {wildcards.seed}"
    script:
        "../workflow/scripts/sample_trajectories.py"


rule summarize_trajectories:
    input:
        [f"{RESULTS}/trajectories/{m}/{t}/{s}.json" for m, t in PAIRS for s in SEEDS],
    output:
        RESULTS + "/metrics/trajectories.json",
    log:
        "logs/summarize_trajectories.log",
    benchmark:
        "benchmarks/summarize_trajectories.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    message:
        "Summarising trajectories (accuracy, length, throughput per model and task)"
    script:
        "../workflow/scripts/summarize_trajectories.py"
