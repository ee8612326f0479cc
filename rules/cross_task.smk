"""Cross-task overlap (issue 5; the paper's Fig. 4b; config: cross_task): the Jaccard of the
top-k units one model selects on different tasks, per granularity and method.

The attributions it reads are ordinary results/attribution/{model}/{task}/{granularity}/{method}
paths: rules prepare_task, sample_trajectories and attribute build them for any task, with the
model's study settings (their params are looked up by model), so a task outside the model's
study entry costs only its own trajectories and attributions.
results/cross_task/{model}.csv   one row per granularity x method x task pair
"""


def cross_task_jobs(w):
    """[task, granularity, method] of the model's cross-task attributions, in config order."""
    return [[t, g, meth] for m, t, g, meth in cross_task_targets(config) if m == w.model]


rule cross_task:
    input:
        tables=lambda w: [L.path(L.ATTRIBUTION, RESULTS, model=w.model, task=t, granularity=g, method=meth) + ".parquet"
                          for t, g, meth in cross_task_jobs(w)],
    output:
        L.wild(L.CROSS_TASK, RESULTS),
    log:
        L.LOGS + "/cross_task/{model}.log",
    benchmark:
        L.BENCHMARKS + "/cross_task/{model}.tsv"
    conda:
        TORCH_ENV  # ipg.study.steering (selected_sets, jaccard_table) imports torch
    params:
        targets=cross_task_jobs,
        top_k=lambda w: {g: cross_task_k(config, g) for g in sorted(config["cross_task"]["granularities"])},
    threads: 1
    message:
        "Cross-task overlap of {wildcards.model}'s top-k units: Jaccard of every task pair vs chance"
    script:
        "../workflow/scripts/cross_task.py"
