"""Saved views of the study's experiment, kept on the tracking server (not in a browser).

MLflow 3's runs page keeps its columns in the browser's localStorage, so a fresh browser shows
only Source / Models / Dataset. Its "Saved views" are experiment tags instead,
`mlflow.sharedViewState.<key>` = {"name", "createdAt", "updatedAt", "state": JSON of the page's
search filter and UI state}, opened by `?viewStateShareKey=<key>` and listed in the page's
"Saved views" menu. `save_views` writes one view per stage with that stage's useful parameter
and metric columns; the intervention view shows each steering condition's accuracy and its
paired difference to the unsteered baseline (docs/method.md, "Evaluation: paired verdicts on
held-out prompts"). Tags go through the tracking API, so a remote MLFLOW_TRACKING_URI works.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

SHARED_VIEW_TAG = "mlflow.sharedViewState."  # MLflow UI's saved-view tag prefix
SHARE_PARAM = "viewStateShareKey"  # the runs page's URL parameter naming a saved view
DEFAULT_VIEW = "intervention"  # the view `ipg ui` opens: the steered outcomes
# stage tag -> (params, metrics) shown as columns, in this order
COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    "attribution": (["granularity", "method", "kind", "config.reward"],
                    ["completeness_residual", "phi_delta", "n_prompts_nonzero_advantage", "n_units",
                     "wall_seconds"]),
    "intervention": (["granularity", "method"], ["baseline_accuracy"]),
    "trajectories": (["task", "temperature", "samples_per_prompt"],
                     ["accuracy", "mean_length", "truncated_fraction", "tokens_per_second"]),
}
STEERED_OUTCOMES = ("d_accuracy", "accuracy")  # per condition, in the intervention view
MAX_CONDITIONS = 12  # conditions shown as columns (all of them stay in the run's metrics)
BASELINE_CONDITION = "none"  # the unsteered condition (its d_accuracy is 0 by definition)
RUN_NAME = "attributes.`Run Name`"
# Sorted by run name (model/task/granularity/method), not by date: sorted by its default
# `attributes.start_time` MLflow 3.17's runs table nests child runs under their (collapsed)
# parent, so a view of output runs showed only the stage run's row with empty cells.
ORDER_BY = "tags.`mlflow.runName`"


def share_key(stage: str) -> str:
    """The saved view's key (tag suffix and URL value) of a stage."""
    return f"ipg-{stage}"


def steered_metrics(metric_keys: Iterable[str]) -> list[str]:
    """`<condition>/d_accuracy`, `<condition>/accuracy` of the first MAX_CONDITIONS steered
    conditions (sorted) among logged metric keys; the baseline condition `none` is left out."""
    conditions = sorted({k[: -len("/d_accuracy")] for k in metric_keys
                         if k.endswith("/d_accuracy")} - {BASELINE_CONDITION})
    return [f"{c}/{o}" for c in conditions[:MAX_CONDITIONS] for o in STEERED_OUTCOMES]


def view_state(stage: str, extra_metrics: Iterable[str] = ()) -> dict:
    """The runs page's state for one stage: its output runs, a flat list by run name (ORDER_BY:
    no row under a collapsed parent), with the stage's params and metrics as columns."""
    params, metrics = COLUMNS[stage]
    columns = ([f"metrics.`{m}`" for m in extra_metrics] + [f"params.`{p}`" for p in params]
               + [f"metrics.`{m}`" for m in metrics])
    widths = {RUN_NAME: 300, **{c: max(110, 7 * len(c) - 70) for c in columns}}
    return {"searchFilter": f"tags.stage = '{stage}' and tags.`ipg.level` = 'output'",
            "orderByKey": ORDER_BY, "orderByAsc": True,
            "selectedColumns": columns, "columnOrder": list(widths), "columnWidths": widths,
            "runListHidden": False, "viewMaximized": False}


def envelope(name: str, state: dict, created_ms: int) -> str:
    """A saved view's tag value, as the UI writes it."""
    return json.dumps({"name": name, "createdAt": created_ms, "updatedAt": created_ms,
                       "state": json.dumps(state)})


def save_views(client: MlflowClient, experiment_id: str, steering_metric_keys: Iterable[str] = (),
               created_ms: int = 0) -> dict[str, str]:
    """Write (or refresh) one saved view per stage; return {stage: share key}. A tag is only
    rewritten when its view changed."""
    tags = client.get_experiment(experiment_id).tags
    extra = {"intervention": steered_metrics(steering_metric_keys)}
    keys = {}
    for stage in COLUMNS:
        state = view_state(stage, extra.get(stage, ()))
        key = share_key(stage)
        tag = SHARED_VIEW_TAG + key
        old = tags.get(tag)
        if old is None or json.loads(json.loads(old)["state"]) != state:
            created = json.loads(old)["createdAt"] if old else created_ms
            client.set_experiment_tag(experiment_id, tag,
                                      envelope(f"ipg: {stage} runs", state, created))
        keys[stage] = key
    return keys


def view_url(base: str, experiment_id: str, stage: str = DEFAULT_VIEW) -> str:
    """The runs page of the experiment opened on a stage's saved view."""
    return (f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&{SHARE_PARAM}={share_key(stage)}")
