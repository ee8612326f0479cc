"""Safety checks: no pickle loading, no remote code, a local-only MLflow UI, outputs kept
inside the project."""
from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
from pathlib import Path

import pytest

from ipg.errors import IPGError

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "ipg"


def _sources() -> list[Path]:
    """The library and the workflow's scripts: everything the study runs."""
    files = sorted(SRC.rglob("*.py")) + sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert len(files) > 20
    return files


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    return ast.unparse(func)


def test_torch_load_always_weights_only() -> None:
    """Every torch.load( in src/ passes weights_only=True (no arbitrary pickles)."""
    bad = []
    for path in _sources():
        text = path.read_text()
        calls = [c for c in _calls(path) if _name(c.func) in ("torch.load", "load")
                 and (_name(c.func) == "torch.load" or "from torch import load" in text)]
        for call in calls:
            kw = {k.arg: k.value for k in call.keywords}
            if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
        # a textual check too, for calls the AST walk cannot see (e.g. in strings passed to exec)
        for n, line in enumerate(text.splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                if f"{path.relative_to(REPO)}:{n}" not in bad:
                    bad.append(f"{path.relative_to(REPO)}:{n}")
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_no_pickle_or_unsafe_yaml_in_src() -> None:
    bad = []
    for path in _sources():
        for call in _calls(path):
            name = _name(call.func)
            if name in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load", "eval", "exec"):
                bad.append(f"{path.relative_to(REPO)}:{call.lineno} {name}")
    assert not bad, bad


def test_trust_remote_code_is_never_true_in_src() -> None:
    bad = []
    for path in _sources():
        for call in _calls(path):
            for kw in call.keywords:
                if kw.arg == "trust_remote_code" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "trust_remote_code" in line and "True" in line.split("trust_remote_code", 1)[1][:8]:
                bad.append(f"{path.relative_to(REPO)}:{n}")
    assert not bad, f"trust_remote_code not literally False: {bad}"


def test_load_model_has_no_remote_code_switch() -> None:
    from ipg.models.load import load_model

    assert "trust_remote_code" not in inspect.signature(load_model).parameters
    with pytest.raises(TypeError):
        load_model("unused", trust_remote_code=True)  # type: ignore[call-arg]


def _evil_copy(tiny_qwen2_dir: Path, tmp_path: Path, model_type: str | None) -> tuple[Path, Path]:
    """A model folder whose config asks for its own modeling code, which would write a marker."""
    model_dir = tmp_path / "evil-model"
    shutil.copytree(tiny_qwen2_dir, model_dir)
    marker = tmp_path / "remote-code-ran"
    (model_dir / "modeling_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import Qwen2ForCausalLM as EvilForCausalLM\n")
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
                          "AutoConfig": "modeling_evil.EvilConfig"}
    if model_type:
        config["model_type"] = model_type
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir, marker


def test_load_model_ignores_code_shipped_with_a_known_architecture(tiny_qwen2_dir, tmp_path) -> None:
    from ipg.models.load import load_model

    model_dir, marker = _evil_copy(tiny_qwen2_dir, tmp_path, None)
    try:
        model, _ = load_model(model_dir)
        assert type(model).__module__.startswith("transformers.")
    except IPGError as err:  # refusing is as safe as ignoring
        assert "\n" not in str(err)
    assert not marker.exists(), "code shipped with the checkpoint was executed"


def test_load_model_rejects_a_checkpoint_that_needs_remote_code(tiny_qwen2_dir, tmp_path) -> None:
    from ipg.models.load import load_model

    model_dir, marker = _evil_copy(tiny_qwen2_dir, tmp_path, "evil_arch")
    with pytest.raises(IPGError) as info:
        load_model(model_dir)
    assert "\n" not in str(info.value) and str(model_dir) in str(info.value)
    assert not marker.exists(), "code shipped with the checkpoint was executed"


# -- the MLflow UI binds the loopback interface by default ---------------------------------------

def test_ui_defaults_to_loopback() -> None:
    from ipg.cli import build_parser
    from ipg.tracking import ui

    assert inspect.signature(ui).parameters["host"].default == "127.0.0.1"
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1"


def test_ui_command_line_binds_loopback(tmp_path, monkeypatch) -> None:
    from ipg import tracking
    from ipg.tracking import server as ui_server

    seen = {}

    class FakeProcess:
        pid = os.getpid()  # os.getpgid(pid) must work; the handle is never stopped here
        returncode = None

        def poll(self):
            return None

    def fake_popen(cmd, **kwargs):
        seen["cmd"], seen["kwargs"] = list(cmd), kwargs
        return FakeProcess()

    monkeypatch.setattr(ui_server.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(ui_server, "port_is_free", lambda host, port: True)
    server = tracking.ui(tracking.tracking_uri(tmp_path), port=5999, wait=False)
    cmd = seen["cmd"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "0.0.0.0" not in cmd and server.url == "http://127.0.0.1:5999"
    assert seen["kwargs"]["start_new_session"] is True


# Where a server could be started from: the library, the workflow, the scripts, the Makefile.
SERVER_SOURCES = ["src", "workflow/scripts", "rules", "scripts", "Snakefile", "Makefile"]


def test_no_server_binds_beyond_loopback() -> None:
    """No source names an all-interfaces address, and every --host / host= default is loopback."""
    import re

    files = [p for entry in SERVER_SOURCES for p in
             ((REPO / entry).rglob("*") if (REPO / entry).is_dir() else [REPO / entry])
             if p.is_file() and p.suffix in ("", ".py", ".smk", ".sh", ".mk")]
    assert any(p.name == "server.py" for p in files) and any(p.name == "Makefile" for p in files)
    bad = []
    for path in files:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.relative_to(REPO)}:{n}"
            if re.search(r"0\.0\.0\.0|\[::\]|INADDR_ANY|host\s*=\s*['\"]::['\"]", line):
                bad.append(f"{where} {line.strip()}")
            for m in re.finditer(r"(?:--host[\"']?\s*[,= ]\s*|\bhost\s*[:=]\s*(?:str\s*=\s*)?)"
                                 r"[\"']([^\"']+)[\"']", line):
                if m.group(1) not in ("127.0.0.1", "localhost"):
                    bad.append(f"{where} {line.strip()}")
            for m in re.finditer(r"--host[ =]([^\s\"',)]+)", line):  # shell: --host 10.0.0.1
                if m.group(1) not in ("127.0.0.1", "localhost"):
                    bad.append(f"{where} {line.strip()}")
    assert not bad, f"a server may bind beyond 127.0.0.1: {bad}"


def test_make_mlflow_passes_no_host() -> None:
    """`make mlflow` runs `ipg ui` with its loopback default (no --host override)."""
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nmlflow:", 1)[1].split("\n\n", 1)[0]
    assert "ipg ui" in recipe and "--host" not in recipe


def test_hub_downloads_no_pickles_or_code() -> None:
    """Hub checkpoints: weights as safetensors, configs and tokenizers; never *.bin / *.pt /
    *.pkl (pickles) or *.py (remote code)."""
    from ipg.models.hub import _wanted

    for name in ("model.safetensors", "model-00001-of-00002.safetensors", "config.json",
                 "tokenizer.json", "tokenizer_config.json", "merges.txt"):
        assert _wanted(name), name
    for name in ("pytorch_model.bin", "model.pt", "optimizer.pth", "data.pkl",
                 "modeling_qwen.py", "tokenization_evil.py", "model.gguf"):
        assert not _wanted(name), name


# -- results_dir stays inside the project ---------------------------------------------------------

def _cfg(results_dir: str) -> dict:
    return {"results_dir": results_dir, "study": [{"model": "tiny-qwen2", "tasks": ["chain_sum"]}]}


@pytest.mark.parametrize("path", ["results", "out/results", "./results", "a/../results", "results/"])
def test_results_dir_inside_the_project_is_accepted(path: str, monkeypatch) -> None:
    from ipg.config.study import validate_config

    monkeypatch.delenv("IPG_ALLOWED_DIRS", raising=False)
    assert validate_config(_cfg(path))["results_dir"] == path


@pytest.mark.parametrize("path", ["/tmp/ipg-results", "../results", "results/../../x", "..", "", "  "])
def test_results_dir_outside_the_project_is_rejected(path: str, monkeypatch) -> None:
    from ipg.config.study import validate_config

    monkeypatch.delenv("IPG_ALLOWED_DIRS", raising=False)
    with pytest.raises(IPGError) as info:
        validate_config(_cfg(path))
    message = str(info.value)
    assert "\n" not in message and message.startswith("config error at results_dir")
    assert repr(path) in message and "IPG_ALLOWED_DIRS" in message


def test_results_dir_listed_in_allowed_dirs_is_accepted(tmp_path, monkeypatch) -> None:
    from ipg.config.study import validate_config

    scratch, other = tmp_path / "scratch", tmp_path / "other"
    monkeypatch.setenv("IPG_ALLOWED_DIRS", os.pathsep.join([str(other), str(scratch)]))
    assert validate_config(_cfg(str(scratch)))["results_dir"] == str(scratch)
    assert validate_config(_cfg(str(scratch / "run1")))["results_dir"] == str(scratch / "run1")
    with pytest.raises(IPGError, match="outside the project"):
        validate_config(_cfg(str(tmp_path / "scratchy")))  # a sibling with a common prefix
    with pytest.raises(IPGError, match="outside the project"):
        validate_config(_cfg("/etc/ipg"))


def test_shipped_configs_pass_the_results_dir_check(monkeypatch) -> None:
    import yaml

    from ipg.config.study import validate_config

    monkeypatch.delenv("IPG_ALLOWED_DIRS", raising=False)
    for name in ("default.yaml", "test.yaml", "paper.yaml"):
        path = REPO / "config" / name
        if path.exists():
            validate_config(yaml.safe_load(path.read_text()) or {})
