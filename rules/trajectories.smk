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
        "../envs/torch-cpu.yaml"
    params:
        sampling=model_sampling,
        chat=model_chat,
        split="attribution",
    threads: workflow.cores
    message:
        "Sampling trajectories: {wildcards.model} on {wildcards.task}, seed {wildcards.seed}"
    script:
        "../workflow/scripts/sample_trajectories.py"
