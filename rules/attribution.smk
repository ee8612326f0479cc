"""Stage 4: attribute every (model, task, granularity, method): IPG and the baselines."""


def attribution_inputs(w):
    inputs = {
        "model": f"{RESULTS}/models/{w.model}",
        "trajectories": f"{RESULTS}/trajectories/{w.model}/{w.task}/{config['attribution']['trajectory_seed']}.parquet",
    }
    if w.granularity == "sae":
        inputs["sae"] = f"{RESULTS}/sae/{w.model}"
    return inputs


rule attribute:
    input:
        unpack(attribution_inputs),
    output:
        table=RESULTS + "/attribution/{model}/{task}/{granularity}/{method}.parquet",
        metrics=RESULTS + "/attribution/{model}/{task}/{granularity}/{method}.json",
    log:
        "logs/attribute/{model}/{task}/{granularity}/{method}.log",
    benchmark:
        "benchmarks/attribute/{model}/{task}/{granularity}/{method}.tsv"
    conda:
        TORCH_ENV
    params:
        method=lambda w: canonical(method_params(config, w.model, w.granularity, w.method)),
    threads: model_threads
    message:
        "Attributing {wildcards.model} on {wildcards.task}: {wildcards.granularity} by {wildcards.method}"
    script:
        "../workflow/scripts/attribute.py"
