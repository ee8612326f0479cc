"""Snakemake script: build one model into a safetensors folder (train, convert or download)."""
from ipg.workflow.scripting import run_script


def main(smk):
    from ipg.models.load import build_model

    params = dict(smk.params.model_params)
    params.setdefault("seed", smk.params.seed)
    params["requires_dirs"] = {name: str(path) for name, path in smk.input.items()}
    build_model(smk.wildcards.model, smk.output[0], params)


run_script(snakemake, main)  # noqa: F821 - injected by Snakemake
