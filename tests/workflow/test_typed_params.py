"""The jobs Snakemake plans get typed params, parsed once at DAG-build time (rules/common.smk):
MethodSpec for attribute, SamplingSettings for sample_trajectories, SteeringConfig for
evaluate_steering, VariantSpec for sensitivity_variant, each next to the dict it was parsed
from (the params rerun trigger's record). The planned jobs' params are pickled in a fresh
process, as Snakemake hands them to a script, and read back here: they must come back as the
typed objects, importable from ipg. Running jobs with them: tests/workflow/test_workflow.py.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from ipg.attribution.ipg_config import IPGConfig
from ipg.attribution.methods import METHODS, MethodSpec
from ipg.config.study import (
    method_params, sampling_for, sensitivity_params, steering_params, validate_config,
)
from ipg.config.jobs import SaeSettings, SamplingSettings, SteeringConfig, VariantSpec

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[2]
# a dry run through the Snakemake API; every planned job's params pickled as Snakemake does
PLAN = """
import pickle, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

root, workdir, out = map(Path, sys.argv[1:])
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf = api.workflow(ResourceSettings(cores=1),
                      ConfigSettings(configfiles=[workdir / "test.yaml"]),
                      snakefile=root / "Snakefile", workdir=workdir)
    wf.dag().execute_workflow(executor="dryrun")
    jobs = [(j.rule.name, dict(j.wildcards.items()), dict(j.params.items()))
            for j in wf._workflow.dag.jobs]
out.write_bytes(pickle.dumps(jobs, protocol=4))
"""


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """(validated config/test.yaml, {rule: [(wildcards, params)]}) of a dry run."""
    workdir = tmp_path_factory.mktemp("plan")
    shutil.copy(ROOT / "config" / "test.yaml", workdir / "test.yaml")
    out = workdir / "jobs.pickle"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", PLAN, str(ROOT), str(workdir), str(out)],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs: dict[str, list] = defaultdict(list)
    for rule, wildcards, params in pickle.loads(out.read_bytes()):
        jobs[rule].append((wildcards, params))
    config = validate_config(yaml.safe_load((ROOT / "config" / "test.yaml").read_text()))
    return config, jobs


def test_attribute_jobs_get_a_method_spec_with_the_configs_m(planned):
    config, jobs = planned
    assert jobs["attribute"], "config/test.yaml plans no attribution"
    seen_ipg = False
    for w, params in jobs["attribute"]:
        spec = params["method"]
        entry = method_params(config, w["model"], w["granularity"], w["method"])
        assert isinstance(spec, MethodSpec) and spec.entry == entry == params["method_key"]
        assert type(spec.config) is type(METHODS.get(spec.kind).parse(spec.params))
        if spec.kind == "ipg":  # m as the config gives it, else IPGConfig's default
            seen_ipg = True
            assert isinstance(spec.config, IPGConfig)
            assert spec.config.m == entry.get("m", IPGConfig().m)
    assert seen_ipg


def test_sampling_steering_and_variant_jobs_get_typed_params(planned):
    config, jobs = planned
    for rule, key in (("sample_trajectories", "sampling"), ("evaluate_steering", "steering"),
                      ("sensitivity_variant", "ipg"), ("train_sae", "sae"),
                      ("evaluate_unsteered", "steering")):
        assert jobs[rule], f"config/test.yaml plans no {rule} job"
    for w, params in jobs["sample_trajectories"]:
        settings = params["sampling"]
        assert isinstance(settings, SamplingSettings)
        assert params["sampling_key"] == sampling_for(config, w["model"])
        assert settings == SamplingSettings.from_dict(params["sampling_key"])
    for w, params in jobs["evaluate_steering"]:
        steering = params["steering"]
        assert isinstance(steering, SteeringConfig)
        assert steering.as_dict() == params["steering_key"] == steering_params(
            config, w["model"], w["method"], w["granularity"])
    for w, params in jobs["train_sae"]:
        assert isinstance(params["sae"], SaeSettings)
        assert params["sae"].as_dict() == params["sae_key"] == {**SaeSettings.from_dict(
            {}).as_dict(), **config["sae"]}
    for w, params in jobs["evaluate_unsteered"]:  # only what the unsteered rows depend on
        steering = params["steering"]
        assert isinstance(steering, SteeringConfig) and "gammas" not in params["steering_key"]
        assert {k: getattr(steering, k) for k in params["steering_key"]} == params["steering_key"]
    for w, params in jobs["sensitivity_variant"]:
        variant = params["ipg"]
        assert isinstance(variant, VariantSpec) and isinstance(variant.method.config, IPGConfig)
        assert variant.params == params["ipg_key"] == sensitivity_params(config, w["variant"])


def test_the_rerun_trigger_records_the_key_dicts_not_the_typed_params(planned):
    """Snakemake's params record skips a dataclass: the *_key dict is what reruns a job."""
    from snakemake.persistence import UNREPRESENTABLE, PersistenceBase

    _, jobs = planned
    _, params = jobs["attribute"][0]
    record = PersistenceBase._serialize_param_builtin
    assert record(None, params["method"]) is UNREPRESENTABLE
    assert record(None, params["method_key"]) == repr(params["method_key"])
