"""Stage 4a: TopK SAEs on each model's residual stream (for the sae granularity)."""


rule train_sae:
    input:
        model=RESULTS + "/models/{model}",
        trajectories=lambda w: f"{RESULTS}/trajectories/{w.model}/{TRAIN_SAE_TASK[w.model]}/{config['attribution']['trajectory_seed']}.parquet",
    output:
        directory(RESULTS + "/sae/{model}"),
    log:
        "logs/train_sae/{model}.log",
    benchmark:
        "benchmarks/train_sae/{model}.tsv"
    conda:
        TORCH_ENV
    params:
        sae=lambda w: canonical(config["sae"]),
        seed=config["seed"],
    threads: model_threads
    message:
        "Training TopK SAEs on {wildcards.model}'s residual stream"
    script:
        "../workflow/scripts/train_sae.py"
