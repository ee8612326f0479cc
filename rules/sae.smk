"""Stage 4a: TopK SAEs on each model's residual stream (for the sae granularity)."""


rule train_sae:
    input:
        model=L.wild(L.MODEL, RESULTS),
        trajectories=lambda w: L.path(L.TRAJECTORIES, RESULTS, model=w.model, task=TRAIN_SAE_TASK[w.model], seed=config["attribution"]["trajectory_seed"]) + ".parquet",
    output:
        directory(L.wild(L.SAE, RESULTS)),
    log:
        L.LOGS + "/train_sae/{model}.log",
    benchmark:
        L.BENCHMARKS + "/train_sae/{model}.tsv"
    conda:
        TORCH_ENV
    params:
        sae=lambda w: SaeSettings.from_dict(config["sae"]),
        sae_key=lambda w: canonical(config["sae"]),
        seed=config["seed"],
    threads: model_threads
    message:
        "Training TopK SAEs on {wildcards.model}'s residual stream"
    script:
        "../workflow/scripts/train_sae.py"
