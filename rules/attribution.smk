"""Stage 4: attribute every (model, task, granularity, method): IPG and the baselines."""


def attribution_inputs(w):
    inputs = {
        "model": L.path(L.MODEL, RESULTS, model=w.model),
        "trajectories": L.path(L.TRAJECTORIES, RESULTS, model=w.model, task=w.task, seed=config["attribution"]["trajectory_seed"]) + ".parquet",
    }
    if w.granularity == "sae":
        inputs["sae"] = L.path(L.SAE, RESULTS, model=w.model)
    return inputs


rule attribute:
    input:
        unpack(attribution_inputs),
    output:
        table=L.wild(L.ATTRIBUTION, RESULTS) + ".parquet",
        metrics=L.wild(L.ATTRIBUTION, RESULTS) + ".json",
    log:
        L.LOGS + "/attribute/{model}/{task}/{granularity}/{method}.log",
    benchmark:
        L.BENCHMARKS + "/attribute/{model}/{task}/{granularity}/{method}.tsv"
    conda:
        TORCH_ENV
    params:
        method=lambda w: MethodSpec.parse(method_params(config, w.model, w.granularity, w.method)),
        method_key=lambda w: canonical(method_params(config, w.model, w.granularity, w.method)),
    threads: model_threads
    message:
        "Attributing {wildcards.model} on {wildcards.task}: {wildcards.granularity} by {wildcards.method}"
    script:
        "../workflow/scripts/attribute.py"
