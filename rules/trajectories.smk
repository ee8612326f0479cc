"""Stage 3: sample G trajectories per attribution prompt and score them with outcome rewards."""


rule sample_trajectories:
    input:
        model=L.wild(L.MODEL, RESULTS),
        data=L.PREPARED,
    output:
        table=L.wild(L.TRAJECTORIES, RESULTS) + ".parquet",
        metrics=L.wild(L.TRAJECTORIES, RESULTS) + ".json",
    log:
        L.LOGS + "/sample_trajectories/{model}/{task}/{seed}.log",
    benchmark:
        L.BENCHMARKS + "/sample_trajectories/{model}/{task}/{seed}.tsv"
    conda:
        TORCH_ENV
    params:
        sampling=model_sampling,
        sampling_key=model_sampling_key,
        chat=model_chat,
        split="attribution",
    threads: model_threads
    message:
        "Sampling trajectories: {wildcards.model} on {wildcards.task}, seed {wildcards.seed}"
    script:
        "../workflow/scripts/sample_trajectories.py"


rule summarize_trajectories:
    input:
        [L.path(L.TRAJECTORIES, RESULTS, model=m, task=t, seed=s) + ".json" for m, t in PAIRS for s in SEEDS],
    output:
        L.path(L.TRAJECTORY_METRICS, RESULTS),
    log:
        L.LOGS + "/summarize_trajectories.log",
    benchmark:
        L.BENCHMARKS + "/summarize_trajectories.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    message:
        "Summarising trajectories (accuracy, length, throughput per model and task)"
    script:
        "../workflow/scripts/summarize_trajectories.py"
