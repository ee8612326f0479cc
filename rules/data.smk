"""Stage 1: prepare each task into a fixed attribution split and a disjoint held-out split."""


rule prepare_task:
    output:
        L.PREPARED,
    log:
        L.LOGS + "/prepare_task/{task}.log",
    benchmark:
        L.BENCHMARKS + "/prepare_task/{task}.tsv"
    conda:
        TORCH_ENV
    params:
        task_params=task_params,
        n_attribution=config["data"]["n_attribution"],
        n_heldout=lambda w: (config["data"].get("n_heldout_tasks") or {}).get(w.task, config["data"]["n_heldout"]),
        seed=config["seed"],
    threads: 1
    message:
        "Preparing task {wildcards.task}"
    script:
        "../workflow/scripts/prepare_task.py"
