"""Stage 2: build each model into a local safetensors folder (train, convert or download)."""


rule build_model:
    input:
        unpack(model_requires),
    output:
        directory(L.wild(L.MODEL, RESULTS)),
    log:
        L.LOGS + "/build_model/{model}.log",
    benchmark:
        L.BENCHMARKS + "/build_model/{model}.tsv"
    conda:
        TORCH_ENV
    params:
        model_params=model_params,
        seed=config["seed"],
    # the study entry's threads (organism: 1), first in line: every job of a model waits for its
    # build, so a 2-thread build queued behind 1-thread jobs of another model idled a core
    threads: model_threads
    priority: 10
    message:
        "Building model {wildcards.model}"
    script:
        "../workflow/scripts/build_model.py"
