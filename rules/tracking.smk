"""MLflow tracking: one sqlite store (mlflow.db, artifacts in mlartifacts/) in the working
directory (or the server in $MLFLOW_TRACKING_URI), experiment "ipg-study" (another config:
"ipg-study-{config name}"): a study run, nested stage runs, one nested run per metrics JSON in
TRACKED_METRICS, the report's figures on the stage runs.

sqlite has one writer: `init_tracking` creates the store before any job that touches it (such
a job takes TRACKING_STORE as an input), and a single local job ingests every file.
Browse with `make mlflow` (or `ipg ui`). After deleting mlflow.db: `snakemake -R init_tracking`.
"""
from ipg.config.study import config_hash

TRACKING_EXPERIMENT = L.experiment(STUDY_NAME)  # "ipg-study" for the default study
TRACKING_ROOT = "."  # mlflow.db and mlartifacts/ live here (the repo root under `make study`)
TRACKING_STORE = L.path(L.TRACKING_STORE, RESULTS)


rule init_tracking:
    output:
        TRACKING_STORE,
    log:
        L.LOGS + "/tracking/init_tracking.log",
    benchmark:
        L.BENCHMARKS + "/tracking/init_tracking.tsv"
    conda:
        "../envs/tracking.yaml"
    params:
        experiment=TRACKING_EXPERIMENT,
        root=TRACKING_ROOT,
    threads: 1
    localrule: True
    message:
        "Creating the MLflow store and experiment '{params.experiment}' (mlflow.db)"
    script:
        "../workflow/scripts/init_tracking.py"


rule ingest_mlflow:
    input:
        metrics=TRACKED_METRICS,
        store=TRACKING_STORE,
        figures=REPORTS + "/figures",  # attached to the stage runs they belong to
    output:
        L.path(L.TRACKING_INGESTED, RESULTS),
    log:
        L.LOGS + "/tracking/ingest_mlflow.log",
    benchmark:
        L.BENCHMARKS + "/tracking/ingest_mlflow.tsv"
    conda:
        "../envs/tracking.yaml"
    params:
        experiment=TRACKING_EXPERIMENT,
        root=TRACKING_ROOT,
        results_dir=RESULTS,
        base={"study.config_hash": config_hash(config)},
    threads: 1
    localrule: True
    message:
        "Ingesting the metrics JSONs into MLflow experiment '{params.experiment}' ({output})"
    script:
        "../workflow/scripts/ingest_mlflow.py"
