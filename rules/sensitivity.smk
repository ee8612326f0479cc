"""Sensitivity stage (issue 5): IPG re-run on one model / task / granularity with each estimator
choice changed (baseline h', advantage, samples G, path points m), compared with the base run.

results/sensitivity/{model}/{task}/{granularity}/{variant}.parquet|json   one attribution each
results/sensitivity/{model}/{task}/{granularity}.csv                      the comparison
Each variant is its own job with its own params, so editing one variant reruns only it.
"""


def sensitivity_variant_inputs(w):
    inputs = {
        "model": L.path(L.MODEL, RESULTS, model=w.model),
        "trajectories": L.path(L.TRAJECTORIES, RESULTS, model=w.model, task=w.task, seed=config["attribution"]["trajectory_seed"]) + ".parquet",
    }
    if w.granularity == "sae":
        inputs["sae"] = L.path(L.SAE, RESULTS, model=w.model)
    return inputs


def sensitivity_runs(w, ext):
    return [L.path(L.SENSITIVITY_VARIANT, RESULTS, model=w.model, task=w.task, granularity=w.granularity, variant=v) + f".{ext}"
            for v in sensitivity_variants(config)]


rule sensitivity_variant:
    input:
        unpack(sensitivity_variant_inputs),
    output:
        table=L.wild(L.SENSITIVITY_VARIANT, RESULTS) + ".parquet",
        metrics=L.wild(L.SENSITIVITY_VARIANT, RESULTS) + ".json",
    log:
        L.LOGS + "/sensitivity_variant/{model}/{task}/{granularity}/{variant}.log",
    benchmark:
        L.BENCHMARKS + "/sensitivity_variant/{model}/{task}/{granularity}/{variant}.tsv"
    conda:
        TORCH_ENV
    params:
        ipg=lambda w: VariantSpec.parse(sensitivity_params(config, w.variant)),
        ipg_key=lambda w: canonical(sensitivity_params(config, w.variant)),
    threads: model_threads
    wildcard_constraints:
        variant=r"[^/]+",
    message:
        "Sensitivity of IPG on {wildcards.model} / {wildcards.task} / {wildcards.granularity}: variant {wildcards.variant}"
    script:
        "../workflow/scripts/sensitivity_variant.py"


rule sensitivity:
    input:
        tables=lambda w: sensitivity_runs(w, "parquet"),
        metrics=lambda w: sensitivity_runs(w, "json"),
    output:
        summary=L.wild(L.SENSITIVITY, RESULTS) + ".csv",
        metrics=L.wild(L.SENSITIVITY, RESULTS) + ".json",
    log:
        L.LOGS + "/sensitivity/{model}/{task}/{granularity}.log",
    benchmark:
        L.BENCHMARKS + "/sensitivity/{model}/{task}/{granularity}.tsv"
    conda:
        TORCH_ENV
    params:
        variants=lambda w: sensitivity_variants(config),
        top_k=config["sensitivity"]["top_k"],
    threads: 1
    message:
        "Sensitivity summary of IPG on {wildcards.model} / {wildcards.task} / {wildcards.granularity}: Spearman, top-k Jaccard, residual, time per variant"
    script:
        "../workflow/scripts/sensitivity.py"
