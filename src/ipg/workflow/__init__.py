"""Plumbing between the package and Snakemake, DVC and execution profiles.

    layout      every path template of the workflow
    targets     Snakemake targets of each study stage (dvc.yaml's stages)
    scripting   glue for workflow/scripts: logging, threads, one-line errors
    preflight   the checks `make study` runs before Snakemake
    profiles    checks of a Snakemake profile
    checks      `ipg check`: config, DVC remote, profile
    dvc_remote  the DVC remote can be reached
    dvc_lock    record a finished study in dvc.lock
"""
