"""DVC over the study: dvc.yaml's stages cover the deliverables, `dvc repro` builds them through
Snakemake on the config named by dvc.yaml's `config` var, and push / pull through the local
remote restores identical files. Hub checkpoints are never hashed into DVC (.dvcignore).

The end-to-end test runs in a temp copy of the repo (its own git and DVC repo and remote),
never in the checkout."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DVC = [sys.executable, "-m", "dvc"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
       "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
CONFIG_VAR = "  - config: config/default.yaml"
DVC_CONFIG = "config/dvc-test.yaml"
STAGE_OUTS = {
    "prepare": ["data/prepared"],
    "models": ["results/models"],
    "trajectories": ["results/trajectories"],
    "attribution": ["results/attribution", "results/sae"],
    "steering": ["results/intervention", "results/transfer"],
    "analysis": ["results/sensitivity", "results/cross_task"],
    "report": ["reports/report.md", "reports/tables", "reports/figures"],
}
TARGETS_STAGE = {"prepare": "prepared"}  # dvc stage -> `python -m ipg.workflow.targets` stage

pytestmark = pytest.mark.workflow


def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def out_path(out) -> str:
    return out if isinstance(out, str) else next(iter(out))


# --- dvc.yaml, statically -------------------------------------------------------------------

def test_stages_version_every_deliverable():
    stages = dvc_yaml()["stages"]
    assert set(stages) == set(STAGE_OUTS)
    for name, stage in stages.items():
        assert [out_path(o) for o in stage["outs"]] == STAGE_OUTS[name], name
        # outputs stay in place during repro: Snakemake decides which jobs rerun
        assert all(isinstance(o, dict) and next(iter(o.values())).get("persist") for o in stage["outs"]), name
        cmd = stage["cmd"]
        assert ".venv/bin/snakemake " in cmd and "--configfile ${config} " in cmd, name
        assert f"ipg.workflow.targets {TARGETS_STAGE.get(name, name)} --configfile ${{config}}" in cmd, name
        assert stage["params"] == [{"${config}": None}], name  # the whole study config
    assert "results/metrics/trajectories.json" in str(stages["trajectories"]["metrics"])


def test_config_var_is_the_default_study():
    text = (ROOT / "dvc.yaml").read_text()
    assert CONFIG_VAR in text.splitlines()
    assert {"config": "config/default.yaml"} in dvc_yaml()["vars"]


def test_hub_models_are_dvcignored():
    from ipg.models import MODELS

    ignored = {line.strip() for line in (ROOT / ".dvcignore").read_text().splitlines()}
    hub = [n for n in MODELS.names() if MODELS.get(n).from_hub]
    assert hub
    for name in hub:
        assert f"results/models/{name}/" in ignored, f"add results/models/{name}/ to .dvcignore"
    for name in MODELS.names():
        if not MODELS.get(name).from_hub:
            assert f"results/models/{name}/" not in ignored


@pytest.mark.parametrize("stage", ["prepared", "models", "trajectories", "attribution", "steering",
                                   "analysis", "report"])
def test_targets_read_ipg_config(stage):
    from ipg.config.study import attribution_targets, cross_task_targets, load_config, steering_targets
    from ipg.workflow.targets import stage_targets

    env = {**ENV, "IPG_CONFIG": str(ROOT / "config" / "test.yaml")}
    out = subprocess.run([sys.executable, "-m", "ipg.workflow.targets", stage], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=True).stdout.split()
    cfg = load_config(ROOT / "config" / "test.yaml")
    assert out == stage_targets(cfg, stage, "test") and out
    if stage == "report":  # a config other than config/default.yaml never writes the tracked reports/
        assert out == [f"{cfg['results_dir']}/reports/test/report.md"]
    if stage == "attribution":
        assert len(out) == len(set(attribution_targets(cfg)) | set(cross_task_targets(cfg)))
    if stage == "steering":
        assert len(out) == len(steering_targets(cfg))  # test.yaml has no transfer pair
        assert all(t.endswith(".csv") for t in out)


# --- dvc repro / status / params / push / pull in a temp copy -----------------------------

def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*DVC, *args], cwd=repo, capture_output=True, text=True, env=ENV,
                            timeout=600)
    if check:
        assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
                   cwd=repo, check=True, capture_output=True)


def tree_hashes(root: Path, skip: str | None = None) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()
            and not (skip and p.relative_to(root).as_posix().startswith(skip))}


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    """A temp copy of the workflow as its own git + DVC repo, dvc.yaml pointed at a test config."""
    return make_repo(tmp_path_factory.mktemp("dvc") / "repo")


def make_repo(repo: Path) -> Path:
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("rules", "workflow", "config", "profiles", "envs", "src"):
        shutil.copytree(ROOT / name, repo / name, ignore=ignore)
    for name in ("Snakefile", "dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    # dvc.yaml's commands run .venv/bin/{snakemake,python}: this interpreter's environment
    (repo / ".venv").symlink_to(Path(sys.prefix))
    with open(repo / ".gitignore", "a") as fh:
        fh.write("\n/.venv\n")
    # config/test.yaml's tiny-qwen2 study only (the organism trains for minutes on a busy CPU)
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["study"] = [e for e in cfg["study"] if e["model"] == "tiny-qwen2"]
    cfg.pop("model_params", None)
    if (cfg.get("sensitivity") or {}).get("model") != "tiny-qwen2":
        cfg.pop("sensitivity", None)  # the analysis stage then runs the cross-task summary only
    assert cfg["study"] and cfg["cross_task"]["model"] == "tiny-qwen2"
    (repo / DVC_CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))
    text = (repo / "dvc.yaml").read_text()
    assert CONFIG_VAR in text
    text = text.replace(CONFIG_VAR, f"  - config: {DVC_CONFIG}")
    # a config other than the default reports under {results_dir}/reports/{study_name or its
    # file's stem}/ (ipg.workflow.layout): the report stage's outs follow it, as dvc.yaml says
    reports = f"{cfg['results_dir']}/reports/{cfg.get('study_name') or Path(DVC_CONFIG).stem}"
    for out in ("report.md", "tables", "figures"):
        assert f"      - reports/{out}:" in text, out
        text = text.replace(f"      - reports/{out}:", f"      - {reports}/{out}:")
    (repo / "dvc.yaml").write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "workflow")
    return repo


@pytest.mark.slow
def test_repro_status_params_push_pull(dvc_repo):
    repo = dvc_repo
    dag = dvc(repo, "dag").stdout
    for stage in STAGE_OUTS:
        assert stage in dag

    # A hub checkpoint folder (as build_model leaves it) must stay out of DVC.
    hub = repo / "results/models/r1-distill-qwen-1.5b"
    hub.mkdir(parents=True)
    (hub / "model.safetensors").write_bytes(b"hub weights " * 1000)
    hub_hash = hashlib.md5((hub / "model.safetensors").read_bytes()).hexdigest()

    dvc(repo, "repro", "prepare", "models")
    assert sorted(p.name for p in (repo / "data/prepared").glob("*.parquet"))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["models"]["params"][DVC_CONFIG]["study"]  # the test config's params
    assert f"--configfile {DVC_CONFIG}" in lock["models"]["cmd"]
    models_out = lock["models"]["outs"][0]
    built = tree_hashes(repo / "results/models", skip="r1-distill-qwen-1.5b/")
    assert built and models_out["nfiles"] == len(built)  # the hub folder is not hashed
    cached = {p.parent.name + p.name for p in (repo / ".dvc/cache").rglob("*") if p.is_file()}
    assert hub_hash not in cached

    status = dvc(repo, "status", "prepare", "models").stdout
    assert "up to date" in status, status
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "repro prepare models")

    # dvc params diff: nothing, then the edited key of the config.
    assert dvc(repo, "params", "diff").stdout.strip() == ""
    config = repo / DVC_CONFIG
    original = config.read_text()
    cfg = yaml.safe_load(original)
    cfg["data"]["n_attribution"] += 1
    config.write_text(yaml.safe_dump(cfg))
    diff = dvc(repo, "params", "diff", "--md").stdout
    assert "data.n_attribution" in diff and DVC_CONFIG in diff, diff
    assert "prepare" in dvc(repo, "status", "prepare").stdout
    config.write_text(original)
    assert dvc(repo, "params", "diff").stdout.strip() == ""

    # metrics: the repro'd stages declare none (trajectories.json is the trajectories stage's)
    assert dvc(repo, "metrics", "show").returncode == 0

    # push, delete outputs and cache, pull: identical files, the hub folder untouched.
    before = {d: tree_hashes(repo / d) for d in ("data/prepared", "results/models")}
    dvc(repo, "push")
    remote = repo / "dvc-remote"
    assert remote.is_dir() and any(p.is_file() for p in remote.rglob("*"))
    shutil.rmtree(repo / "data/prepared")
    for model_dir in (repo / "results/models").iterdir():
        if model_dir != hub:
            shutil.rmtree(model_dir)
    shutil.rmtree(repo / ".dvc/cache")
    dvc(repo, "pull", "prepare", "models")
    after = {d: tree_hashes(repo / d) for d in ("data/prepared", "results/models")}
    assert after == before
    assert hashlib.md5((hub / "model.safetensors").read_bytes()).hexdigest() == hub_hash
    assert "up to date" in dvc(repo, "status", "prepare", "models").stdout


@pytest.mark.slow
def test_snakemake_study_then_dvc_lock_status_clean_push_pushes(tmp_path):
    """`make study`'s path: Snakemake (not dvc repro) builds the study, `python -m ipg.workflow.dvc_lock`
    records it, then `dvc status` is clean and `dvc push` uploads every cached output file."""
    repo = make_repo(tmp_path / "repo")
    cfg = yaml.safe_load((repo / DVC_CONFIG).read_text())  # one task, one granularity: minutes
    cfg["study"] = [{**e, "tasks": e["tasks"][:1], "granularities": ["neurons"]} for e in cfg["study"]]
    cfg.pop("cross_task", None)
    (repo / DVC_CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**ENV, "PYTHONPATH": str(repo / "src")}
    smk = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
                          DVC_CONFIG], cwd=repo, capture_output=True, text=True, env=env, timeout=1800)
    assert smk.returncode == 0, smk.stderr[-3000:]
    assert not (repo / "dvc.lock").exists()
    assert "changed" in dvc(repo, "status").stdout  # the gap: DVC knows nothing of the run

    lock = subprocess.run([sys.executable, "-m", "ipg.workflow.dvc_lock"], cwd=repo, capture_output=True,
                          text=True, env=env, timeout=600)
    assert lock.returncode == 0, lock.stderr
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(stages) == set(STAGE_OUTS)
    assert "up to date" in dvc(repo, "status").stdout

    # dvc.lock matches the files: each out's nfiles is the file count on disk
    for name, outs in STAGE_OUTS.items():
        for out in stages[name]["outs"]:
            path = repo / out["path"]
            if path.is_dir():
                assert out.get("nfiles", 0) == sum(p.is_file() for p in path.rglob("*")), out["path"]

    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-f", "tmp", str(remote))
    pushed = dvc(repo, "push", "-r", "tmp").stdout
    stored = [p for p in remote.rglob("*") if p.is_file()]
    cached = [p for p in (repo / ".dvc" / "cache").rglob("*") if p.is_file()]
    n = int(pushed.split(" file")[0].split()[-1])
    assert n > 0 and len(stored) == n == len(cached), (pushed, len(stored), len(cached))
    assert "Everything is up to date" in dvc(repo, "push", "-r", "tmp").stdout


@pytest.mark.slow  # ~10 dvc calls: 20-80 s
def test_dvc_lock_records_outputs_built_outside_dvc(tmp_path):
    """ipg.workflow.dvc_lock on a small DVC project whose outputs were built by another tool: it creates
    a missing folder out, writes dvc.lock, `dvc status` is clean and `dvc push` pushes them;
    a missing file out is one IPGError naming the stage."""
    from ipg.workflow.dvc_lock import commit_study
    from ipg.errors import IPGError

    repo = tmp_path / "proj"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "step.py").write_text("print('built elsewhere')\n")
    (repo / "params.yaml").write_text("n: 3\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "build": {"cmd": "false", "deps": ["src/step.py"], "params": ["n"],
                  "outs": [{"out/data": {"persist": True}}, "out/table.csv"]},
        "empty": {"cmd": "false", "deps": ["out/data"], "outs": [{"out/none": {"persist": True}}]},
    }}))
    (repo / "out" / "data").mkdir(parents=True)
    for i in range(3):
        (repo / "out" / "data" / f"{i}.bin").write_bytes(bytes([i]) * 100)
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    with pytest.raises(IPGError, match="stage 'build': output out/table.csv is missing"):
        commit_study(repo)
    (repo / "out" / "table.csv").write_text("a,b\n1,2\n")
    assert "changed" in dvc(repo, "status").stdout
    assert commit_study(repo) == ["build", "empty"]
    assert (repo / "out" / "none").is_dir()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["build"]["params"]["params.yaml"] == {"n": 3}
    assert {o["path"]: o.get("nfiles") for o in lock["build"]["outs"]}["out/data"] == 3
    assert "up to date" in dvc(repo, "status").stdout
    remote = tmp_path / "remote"
    dvc(repo, "remote", "add", "-d", "tmp", str(remote))
    pushed = dvc(repo, "push").stdout
    stored = [p for p in remote.rglob("*") if p.is_file()]
    # out/data's 3 files + table.csv + the .dir listings of out/data and (empty) out/none
    assert "6 files pushed" in pushed and len(stored) == 6, (pushed, stored)
