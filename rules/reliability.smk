"""Reliability stage (issue 13, item 6): retest agreement of IPG against the number of
attribution prompts n and samples per prompt G, from one IPG attribution per G over a larger
pool of attribution-split prompts (the study's held-out questions excluded).

results/reliability/{task}/pool.parquet                              the prompt pool
results/reliability/{model}/{task}/trajectories.parquet|json         max(G) samples per prompt
results/reliability/{model}/{task}/{granularity}/G{g}.parquet|json   IPG on the first g samples
results/reliability/{model}/{task}/{granularity}.csv|json            the curve + budget choice
The attributions reuse the sensitivity stage's script (max_samples_per_prompt gives G).
"""


def reliability_inputs(w):
    inputs = {
        "model": L.path(L.MODEL, RESULTS, model=w.model),
        "trajectories": L.path(L.RELIABILITY_TRAJECTORIES, RESULTS, model=w.model, task=w.task) + ".parquet",
    }
    if w.granularity == "sae":
        inputs["sae"] = L.path(L.SAE, RESULTS, model=w.model)
    return inputs


def reliability_ipg_key(w):
    """The study's IPG params for the model and granularity (as sensitivity_params builds
    them; max_residual null: the residual is measured), reliability.ipg over them, on the first
    G samples of each prompt."""
    params = {"max_residual": None}
    params.update(config["attribution"]["granularity_params"].get(w.granularity, {}))
    for entry in config["study"]:
        if entry["model"] == w.model:
            params.update(entry.get("attribution", {}))
    params.update(config["reliability"]["ipg"])
    params["max_samples_per_prompt"] = int(w.variant[1:])
    return canonical(params)


def reliability_ipg(w):
    """The typed variant (ipg.config.jobs.VariantSpec) of reliability_ipg_key."""
    return VariantSpec.parse(reliability_ipg_key(w))


def reliability_sampling_key(w):
    sampling = dict(sampling_for(config, w.model))
    sampling.update(n_prompts=None, samples_per_prompt=max(config["reliability"]["G"]))
    return canonical(sampling)


def reliability_sampling(w):
    return SamplingSettings.from_dict(reliability_sampling_key(w))


def reliability_k(w):
    """The steered k of the granularity (the largest of steering.ks for it)."""
    ks = steering_params(config, w.model, config["steering"]["control_method"], w.granularity)["ks"]
    return max(ks)


rule reliability_pool:
    input:
        study="data/prepared/{task}.parquet",
    output:
        L.wild(L.RELIABILITY_POOL, RESULTS),
    log:
        L.LOGS + "/reliability_pool/{task}.log",
    benchmark:
        L.BENCHMARKS + "/reliability_pool/{task}.tsv"
    conda:
        TORCH_ENV
    params:
        pool_prompts=lambda w: config["reliability"]["pool_prompts"],
        task_params=task_params,
        seed=config["seed"],
    threads: 1
    message:
        "Reliability prompt pool of {wildcards.task} (attribution-split questions only)"
    run:
        from ipg.study.reliability import prepare_pool

        prepare_pool(wildcards.task, params.pool_prompts, input.study, params.seed,
                     dict(params.task_params), output[0])


rule reliability_sample:
    input:
        model=L.wild(L.MODEL, RESULTS),
        data=L.wild(L.RELIABILITY_POOL, RESULTS),
    output:
        table=L.wild(L.RELIABILITY_TRAJECTORIES, RESULTS) + ".parquet",
        metrics=L.wild(L.RELIABILITY_TRAJECTORIES, RESULTS) + ".json",
    log:
        L.LOGS + "/reliability_sample/{model}/{task}.log",
    benchmark:
        L.BENCHMARKS + "/reliability_sample/{model}/{task}.tsv"
    conda:
        TORCH_ENV
    params:
        sampling=reliability_sampling,
        sampling_key=reliability_sampling_key,
        chat=model_chat,
        split="attribution",
    threads: model_threads
    message:
        "Reliability trajectories: {wildcards.model} on the {wildcards.task} pool"
    run:
        from ipg.study.trajectories import run_sampling

        run_sampling(model_dir=input.model, prepared_path=input.data, task=wildcards.task,
                     chat=params.chat, split=params.split,
                     seed=int(config["attribution"]["trajectory_seed"]),
                     sampling=params.sampling, table_path=output.table,
                     metrics_path=output.metrics, progress=False)


rule reliability_attribute:
    input:
        unpack(reliability_inputs),
    output:
        table=L.wild(L.RELIABILITY_VARIANT, RESULTS) + ".parquet",
        metrics=L.wild(L.RELIABILITY_VARIANT, RESULTS) + ".json",
    log:
        L.LOGS + "/reliability_attribute/{model}/{task}/{granularity}/{variant}.log",
    benchmark:
        L.BENCHMARKS + "/reliability_attribute/{model}/{task}/{granularity}/{variant}.tsv"
    conda:
        TORCH_ENV
    params:
        ipg=reliability_ipg,
        ipg_key=reliability_ipg_key,
    threads: model_threads
    wildcard_constraints:
        variant=r"G\d+",
    message:
        "Reliability: IPG on {wildcards.model} / {wildcards.task} pool / {wildcards.granularity}, {wildcards.variant}"
    script:
        "../workflow/scripts/sensitivity_variant.py"


rule reliability:
    input:
        tables=lambda w: [L.path(L.RELIABILITY_VARIANT, RESULTS, model=w.model, task=w.task, granularity=w.granularity, variant=f"G{g}") + ".parquet"
                          for g in sorted(config["reliability"]["G"])],
    output:
        curve=L.wild(L.RELIABILITY_CURVE, RESULTS) + ".csv",
        metrics=L.wild(L.RELIABILITY_CURVE, RESULTS) + ".json",
    log:
        L.LOGS + "/reliability/{model}/{task}/{granularity}.log",
    benchmark:
        L.BENCHMARKS + "/reliability/{model}/{task}/{granularity}.tsv"
    conda:
        TORCH_ENV
    params:
        G=lambda w: sorted(config["reliability"]["G"]),
        ns=lambda w: config["reliability"]["ns"],
        k=reliability_k,
        repeats=lambda w: config["reliability"]["repeats"],
        seed=config["seed"],
        target_jaccard=lambda w: config["reliability"]["target_jaccard"],
    threads: 1
    message:
        "Reliability curve of IPG on {wildcards.model} / {wildcards.task} / {wildcards.granularity}: split-half Spearman and top-k Jaccard vs n and G"
    script:
        "../workflow/scripts/reliability.py"
