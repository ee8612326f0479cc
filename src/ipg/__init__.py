"""Integrated Policy Gradient (IPG): find and steer the components of a reasoning model that
drive an outcome of its chain of thought. See docs/method.md for the equations.

The public API (ipg.api; imported on first use, so `import ipg` stays cheap):
`ipg.sample`, `ipg.attribute`, `ipg.select_units`, `ipg.steer`.

Layout (one folder per concern; tests/test_import_cycles.py checks there is no import cycle):
    api, errors, registry   the public API, the one-line IPGError, name -> object registries
    core/         the model-facing core: units (granularities), intervention (Eq. 4), sampling,
                  outcome rewards, devices, resumable checkpoints
    models/       registered models: architectures, building and loading
    tasks/        registered tasks: loaders, prompts, graders
    sae/          sparse autoencoders (the `sae` granularity)
    attribution/  the method: IPG (Eqs. 1-3), advantages, baselines, the methods registry
    study/        the study's computations: trajectories, steering evaluation and its summary,
                  statistics, reliability, sensitivity, cross-task overlap, provenance
    report/       figures, tables and findings of the report
    config/       the typed configuration: schema, validation, deep checks, per-job params
    workflow/     Snakemake / DVC plumbing: path layout, targets, script glue, preflight, profiles
    tracking/     MLflow tracking of the study
    bench/        benchmarks
    organism/     the model organism (a trained tiny model with a known mechanism)
    cli/          the `ipg` command line
"""

__version__ = "0.1.0"
__all__ = ["sample", "attribute", "select_units", "steer", "__version__"]
_API = {"sample", "attribute", "select_units", "steer"}


def __getattr__(name: str):
    if name in _API:
        from ipg import api

        return getattr(api, name)
    raise AttributeError(f"module 'ipg' has no attribute {name!r}")
