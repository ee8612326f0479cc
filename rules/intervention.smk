"""Stage 5: steer each model with each method's selected units on the held-out split
(gamma grid x per-granularity k grid x selections, with the unsteered baseline, the signed
selection's deletion curve and mean ablation, and the temperature control), and transfer
units selected on one model to another of the same architecture (gamma grid only)."""
from ipg.config.jobs import UNSTEERED_SETTINGS


def evaluation_params(w, source=None):
    """The steering params of one job (ipg.config.study.steering_params) in canonical key order: the
    rerun key of its typed SteeringConfig (evaluation_config)."""
    if source is None:
        return canonical(steering_params(config, w.model, w.method, w.granularity))
    return canonical({**steering_params(config, w.target, w.method, w.granularity),
                      "control_temperatures": [], "deletion_ks": [], "mean_ablation": False})


def evaluation_config(w, source=None):
    """The typed steering params of one job (ipg.config.jobs.SteeringConfig)."""
    return SteeringConfig.from_dict(evaluation_params(w, source))


def unsteered_params(w):
    """The unsteered conditions' settings of a model and task (ipg.study.steering.UNSTEERED_SETTINGS
    and the control temperatures of its steering.control_method job), canonical: a gamma or k
    edit does not rerun them."""
    granularity = next(e["granularities"][0] for e in config["study"] if e["model"] == w.model)
    full = evaluation_params(SimpleNamespace(model=w.model, task=w.task, granularity=granularity,
                                             method=config["steering"]["control_method"]))
    keep = (*UNSTEERED_SETTINGS, "control_temperatures")
    return canonical({k: v for k, v in full.items() if k in keep})


def steering_inputs(w, source=None):
    model = w.model if source is None else w.target
    inputs = {
        "model": L.path(L.MODEL, RESULTS, model=model),
        "data": L.PREPARED.format(task=w.task),
        "attribution": L.path(L.ATTRIBUTION, RESULTS, model=source or w.model, task=w.task, granularity=w.granularity, method=w.method) + ".parquet",
    }
    if any(e["model"] == model for e in config["study"]):  # sampled once per model x task
        inputs["unsteered"] = L.path(L.UNSTEERED, RESULTS, model=model, task=w.task) + ".parquet"
    if w.granularity == "sae":
        inputs["sae"] = L.path(L.SAE, RESULTS, model=model)
    if evaluation_config(w, source).needs_means:  # the steered model's attribution trajectories
        seed = config["attribution"]["trajectory_seed"]
        inputs["trajectories"] = L.path(L.TRAJECTORIES, RESULTS, model=model, task=w.task, seed=seed) + ".parquet"
    return inputs


rule evaluate_unsteered:
    input:
        model=L.wild(L.MODEL, RESULTS),
        data=L.PREPARED,
    output:
        table=L.wild(L.UNSTEERED, RESULTS) + ".parquet",
        metrics=L.wild(L.UNSTEERED, RESULTS) + ".json",
    log:
        L.LOGS + "/evaluate_unsteered/{model}/{task}.log",
    benchmark:
        L.BENCHMARKS + "/evaluate_unsteered/{model}/{task}.tsv"
    conda:
        TORCH_ENV
    params:
        steering=lambda w: SteeringConfig.from_dict(unsteered_params(w)),
        steering_key=unsteered_params,
        chat=model_chat,
    threads: model_threads
    message:
        "Sampling {wildcards.model} unsteered on {wildcards.task} (every seed and control temperature)"
    script:
        "../workflow/scripts/evaluate_unsteered.py"


rule evaluate_steering:
    input:
        unpack(steering_inputs),
    output:
        table=L.wild(L.INTERVENTION, RESULTS) + ".parquet",
        summary=L.wild(L.INTERVENTION, RESULTS) + ".csv",
        metrics=L.wild(L.INTERVENTION, RESULTS) + ".json",
    log:
        L.LOGS + "/evaluate_steering/{model}/{task}/{granularity}/{method}.log",
    benchmark:
        L.BENCHMARKS + "/evaluate_steering/{model}/{task}/{granularity}/{method}.tsv"
    conda:
        TORCH_ENV
    params:
        steering=evaluation_config,
        steering_key=evaluation_params,
        chat=model_chat,
    threads: model_threads
    message:
        "Steering {wildcards.model} on {wildcards.task}: {wildcards.granularity} selected by {wildcards.method}"
    script:
        "../workflow/scripts/evaluate_steering.py"


rule evaluate_transfer:
    input:
        unpack(lambda w: steering_inputs(w, source=w.source)),
    output:
        table=L.wild(L.TRANSFER, RESULTS) + ".parquet",
        summary=L.wild(L.TRANSFER, RESULTS) + ".csv",
        metrics=L.wild(L.TRANSFER, RESULTS) + ".json",
    log:
        L.LOGS + "/evaluate_transfer/{source}__to__{target}/{task}/{granularity}/{method}.log",
    benchmark:
        L.BENCHMARKS + "/evaluate_transfer/{source}__to__{target}/{task}/{granularity}/{method}.tsv"
    conda:
        TORCH_ENV
    params:
        steering=lambda w: evaluation_config(w, source=w.source),
        steering_key=lambda w: evaluation_params(w, source=w.source),
        chat=lambda w: get_model_spec(w.target).chat,
    threads: model_threads
    message:
        "Transfer: {wildcards.source}'s {wildcards.granularity} units ({wildcards.method}) steering {wildcards.target} on {wildcards.task}"
    script:
        "../workflow/scripts/evaluate_steering.py"
