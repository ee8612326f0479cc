"""The conda env files are real and pinned: parsed offline and checked against the lock file.

Conda cannot run on the CI machine, so this is the check that `--use-conda` users get the
same versions as the venv.
"""
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml")) + [ROOT / "environment.yml"]
CONDA_SPEC = re.compile(r"^[A-Za-z0-9_.\-]+(=[0-9][0-9A-Za-z.*]*)?$")
TORCH_ENVS = ("cpu", "gpu")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_versions() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements" / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"lock line not pinned with ==: {line}"
            out[normalize(req.name)] = spec.version
    for line in (ROOT / "requirements" / "no-deps.txt").read_text().splitlines():
        if line.strip():
            req = Requirement(line)
            out[normalize(req.name)] = next(iter(req.specifier)).version
    return out


def test_lock_pins_the_required_stack():
    lock = lock_versions()
    for name in ["snakemake", "torch", "transformers", "datasets", "mlflow", "dvc", "pandas",
                 "pyarrow", "seaborn", "safetensors", "tqdm", "gguf", "accelerate",
                 "reasoning-gym", "champ-dataset", "math-verify", "pytest", "pytest-xdist", "eai-sparsify",
                 "captum", "snakemake-executor-plugin-slurm",
                 "snakemake-executor-plugin-kubernetes", "setuptools"]:
        assert name in lock, f"{name} missing from requirements.lock"
    assert lock["torch"] == "2.13.0"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_is_pinned_and_matches_lock(path):
    env = yaml.safe_load(path.read_text())
    assert set(env) >= {"name", "channels", "dependencies"}, f"{path.name}: missing keys"
    assert env["channels"] and all(isinstance(c, str) for c in env["channels"])
    lock = lock_versions()
    pip_specs = None
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path.name}: unexpected mapping {dep}"
            pip_specs = dep["pip"]
        else:
            assert CONDA_SPEC.match(dep), f"{path.name}: malformed conda spec {dep!r}"
            assert "=" in dep, f"{path.name}: conda spec {dep!r} is not pinned"
    assert pip_specs, f"{path.name}: no pip section"
    checked = 0
    for spec in pip_specs:
        if spec.startswith("-"):  # options such as --extra-index-url and -e .
            continue
        req = Requirement(spec)  # raises on a malformed spec
        (pin,) = req.specifier
        assert pin.operator == "==", f"{path.name}: {spec} is not pinned with =="
        name = normalize(req.name)
        assert name in lock, f"{path.name}: {name} is not in the lock file"
        assert pin.version == lock[name], f"{path.name}: {name}=={pin.version} but lock has {lock[name]}"
        checked += 1
    assert checked >= 5


def test_every_rule_names_a_conda_env_that_exists():
    rule_files = sorted((ROOT / "rules").glob("*.smk"))
    assert rule_files
    for rules in rule_files:
        text = rules.read_text()
        n_rules = len(re.findall(r"^rule \w+:", text, flags=re.M))
        envs = re.findall(r'conda:\s*\n\s*("[^"]+"|TORCH_ENV)', text)
        assert len(envs) == n_rules, f"{rules.name}: {n_rules} rules but {len(envs)} conda: entries"
        for env in envs:
            # TORCH_ENV (rules/common.smk) is envs/torch-<config torch_env>.yaml: both must exist
            paths = ([f"../envs/torch-{v}.yaml" for v in TORCH_ENVS] if env == "TORCH_ENV"
                     else [env.strip('"')])
            for path in paths:
                assert (rules.parent / path).resolve().exists(), f"{rules.name}: {path} does not exist"


def test_torch_env_choices_match_the_schema_and_the_common_rules():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["properties"]["torch_env"]["enum"] == list(TORCH_ENVS)
    common = (ROOT / "rules/common.smk").read_text()
    assert 'TORCH_ENV = f"../envs/torch-{config[\'torch_env\']}.yaml"' in common
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert paper["torch_env"] == "gpu"  # the GPU-cluster study installs CUDA torch
