"""The bad-input catalogue's harness: cases, how one is run and checked, CATALOGUE.md's rows.

A case builds a bad input under a temp folder and returns (call, names, fix). For an "error"
case `call()` must raise IPGError; for a "warning" case (bad input that still gives a labelled
result, e.g. all rewards equal) it must return and emit a UserWarning. The message must be one
line containing every string of `names` (the bad key, value, file or row) and `fix` (what to
do), and nothing may be left under `out/`, where the call's outputs would have gone.

The cases live in the theme files test_bad_{config,data,files,runtime,infrastructure}.py.
CATALOGUE.md (case -> the exact message) is written by make_catalogue.py, which runs every
case; each test compares its case's message with the file, so neither can drift silently.
Temp paths read `{tmp}`, the repository `{repo}` and pyarrow's reasons `{reason}` there.
"""
from __future__ import annotations

import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from ipg.errors import IPGError

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "CATALOGUE.md"
REGENERATE = "python tests/reliability/make_catalogue.py"
THEMES = {  # theme file -> title, in the catalogue's order
    "test_bad_config": "configuration",
    "test_bad_data": "data and tasks",
    "test_bad_files": "files and models",
    "test_bad_runtime": "runtime and numerics",
    "test_bad_infrastructure": "infrastructure",
}

Case = tuple[Callable[[], Any], list[str], str]


@dataclass
class Entry:
    theme: str
    name: str
    build: Callable[["Ctx"], Case]
    kind: str = "error"  # or "warning"


def case_registry(theme: str) -> tuple[dict[str, Entry], Callable]:
    """(CASES, @case(name, kind="error")) for one theme file."""
    cases: dict[str, Entry] = {}

    def case(name: str, kind: str = "error"):
        def add(fn: Callable[[Ctx], Case]) -> Callable[[Ctx], Case]:
            assert name not in cases, name
            cases[name] = Entry(theme, name, fn, kind)
            return fn
        return add

    return cases, case


class Ctx:
    """What a case may use: tmp (inputs), out (where outputs would go), mp, fixture(name)."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, fixture: Callable[[str], Any]):
        self.tmp, self.out, self.mp, self._fixture = tmp, tmp / "out", monkeypatch, fixture

    def fixture(self, name: str) -> Any:
        return self._fixture(name)


def run_case(entry: Entry, ctx: Ctx) -> str:
    """Run one case, check its message (one line, names, fix, no leftovers) and return it."""
    call, names, fix = entry.build(ctx)
    if entry.kind == "error":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(IPGError) as info:
                call()
        message = str(info.value)
    else:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            call()
        found = [str(w.message) for w in record if issubclass(w.category, UserWarning)
                 and names[0] in str(w.message)]
        assert found, f"no UserWarning naming {names[0]!r}: {[str(w.message) for w in record]}"
        message = found[0]
    assert message and "\n" not in message.strip(), f"not one line: {message!r}"
    assert "Traceback" not in message
    for part in names:
        assert part in message, f"{part!r} not named in: {message}"
    assert fix in message, f"no fix ({fix!r}) in: {message}"
    leftovers = sorted(ctx.out.rglob("*")) if ctx.out.exists() else []
    assert not leftovers, f"half-written outputs left behind: {leftovers}"
    return message


# pyarrow's reason for an unreadable parquet file quotes the file's path and is cut to a fixed
# length by the reader, so its text depends on the temp folder's length: it reads {reason}.
_PARQUET_REASON = re.compile(r"(is not readable parquet) \((?:[^()]|\([^()]*\))*\)")


def normalize(message: str, tmp: Path) -> str:
    """The message as CATALOGUE.md shows it: machine-dependent parts replaced by {tmp},
    {repo} and {reason}."""
    message = _PARQUET_REASON.sub(r"\1 ({reason})", message)
    for path, label in ((tmp.resolve(), "{tmp}"), (tmp, "{tmp}"), (REPO, "{repo}")):
        message = message.replace(str(path), label)
    return message


def row(entry: Entry, message: str) -> str:
    cell = message.replace("|", "\\|")
    return f"| {THEMES[entry.theme]} | {entry.name} | {entry.kind} | {cell} |"


def catalogue_rows() -> dict[str, str]:
    """{case name: its row} of CATALOGUE.md."""
    rows = {}
    if CATALOGUE.exists():
        for line in CATALOGUE.read_text().splitlines():
            parts = line.split(" | ")
            if line.startswith("| ") and len(parts) >= 4 and parts[2] in ("error", "warning"):
                rows[parts[1]] = line
    return rows


def check_case(entry: Entry, tmp: Path, monkeypatch: pytest.MonkeyPatch,
               request: pytest.FixtureRequest) -> None:
    """The pytest body of every case: run it, then compare with its row of CATALOGUE.md."""
    message = run_case(entry, Ctx(tmp, monkeypatch, request.getfixturevalue))
    print(f"\nCATALOGUE | {entry.name} | {message}")
    want = row(entry, normalize(message, tmp))
    have = catalogue_rows().get(entry.name)
    assert have == want, (f"CATALOGUE.md is out of date for {entry.name!r} (run `{REGENERATE}`):"
                          f"\n  file: {have}\n  now:  {want}")


# -- inputs shared by the theme files ---------------------------------------------------------------

def trajectory_table(n_prompts: int = 2, g: int = 3, rewards: list[float] | None = None):
    """A small trajectory table with every column of the trajectory stage (tiny vocab ids)."""
    import pandas as pd

    from ipg.study.trajectories import TRAJECTORY_COLUMNS

    rows = []
    for p in range(n_prompts):
        for j in range(g):
            r = rewards[j] if rewards is not None else float(j == 0)
            rows.append(dict(prompt_id=f"p{p}", sample_id=j, prompt="Q", answer="1",
                             prompt_ids=[40 + p, 41, 42, 43], gen_ids=[50 + j, 51, 52 + p],
                             text="t", pred="1", reward_accuracy=r, reward_length=3.0,
                             logprob=0.0, truncated=True, temperature=1.0))
    return pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)


def prepared_frame():
    import pandas as pd

    return pd.DataFrame({"prompt_id": ["t-0", "t-1"], "task": "chain_sum", "question": ["1+1", "2+2"],
                         "prompt": ["1+1", "2+2"], "answer": ["2", "4"],
                         "split": ["attribution", "heldout"]})


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a parquet file\n" * 4)
    return path


def model_copy(ctx: Ctx) -> Path:
    dst = ctx.tmp / "tiny-qwen2"
    shutil.copytree(ctx.fixture("tiny_qwen2_dir"), dst)
    return dst


def traj_file(ctx: Ctx) -> Path:
    path = ctx.tmp / "traj.parquet"
    trajectory_table().to_parquet(path)
    return path


def run_ipg_call(ctx: Ctx, model_dir: Path, traj: Path) -> Callable[[], Any]:
    from ipg.attribution.run import run_ipg

    return lambda: run_ipg(model_dir, traj, "neurons", {"m": 4}, ctx.out / "ipg.parquet",
                           ctx.out / "ipg.json", progress=False)


# -- the conftest fixtures, for make_catalogue.py (outside pytest) ------------------------------------

def standalone_fixtures(tmp: Path) -> Callable[[str], Any]:
    """fixture(name) building tiny_qwen2 / tiny_qwen2_dir / mlflow_template / new_mlflow_store as
    tests/conftest.py does, once each."""
    cache: dict[str, Any] = {}

    def build(name: str) -> Any:
        if name == "tiny_qwen2":
            from ipg.models.tiny import tiny_random_model

            return tiny_random_model("qwen2", seed=0)
        if name == "tiny_qwen2_dir":
            from ipg.models.load import build_model

            return build_model("tiny-qwen2", tmp / "models" / "tiny-qwen2")
        if name == "mlflow_template":
            from mlflow.tracking import MlflowClient

            from ipg.tracking import tracking_uri

            (tmp / "mlflow-template").mkdir(parents=True, exist_ok=True)
            MlflowClient(tracking_uri=tracking_uri(tmp / "mlflow-template")).search_experiments()
            return tmp / "mlflow-template" / "mlflow.db"
        if name == "new_mlflow_store":
            from ipg.tracking import tracking_uri

            def make(root: Path) -> str:
                root.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(fixture("mlflow_template"), root / "mlflow.db")
                return tracking_uri(root)
            return make
        raise KeyError(f"no standalone fixture {name!r}; add it to standalone_fixtures")

    def fixture(name: str) -> Any:
        if name not in cache:
            cache[name] = build(name)
        return cache[name]

    return fixture
