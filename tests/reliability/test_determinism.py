"""The same config and seeds give bitwise-identical outputs: trajectories, attributions and
prepared tasks; and every metrics JSON records seeds, library versions and a config hash."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    """Every cell of a frame, serialised exactly (lists and floats included)."""
    return json.dumps(frame.to_dict(orient="split"), default=repr, sort_keys=True).encode()


def test_sampling_twice_gives_identical_tokens_and_logprobs(tiny_qwen2) -> None:
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    model, tokenizer = tiny_qwen2
    prompts = ["1+2+3=", "7*8 is", "Q: 9-4?"]
    cfg = SamplingConfig(temperature=1.0, max_new_tokens=12, prompts_per_batch=2, seed=7)
    first, _ = sample_trajectories(model, tokenizer, prompts, 4, cfg, progress=False)
    second, _ = sample_trajectories(model, tokenizer, prompts, 4, cfg, progress=False)
    assert len(first) == len(second) == 12
    for a, b in zip(first, second):
        assert (a.prompt_index, a.sample_id, a.gen_ids, a.truncated) == \
            (b.prompt_index, b.sample_id, b.gen_ids, b.truncated)
        assert a.logprob == b.logprob  # bitwise, not approximately
        assert a.entropy == b.entropy or (a.entropy != a.entropy and b.entropy != b.entropy)
    other, _ = sample_trajectories(model, tokenizer, prompts, 4,
                                   SamplingConfig(max_new_tokens=12, prompts_per_batch=2, seed=8),
                                   progress=False)
    assert [t.gen_ids for t in other] != [t.gen_ids for t in first]  # the seed matters


def test_prepare_task_twice_is_identical(tmp_path: Path) -> None:
    from ipg.tasks.prepare import prepare_task, write_prepared

    a = prepare_task("organism_arith", 6, 4, seed=3)
    b = prepare_task("organism_arith", 6, 4, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert _frame_bytes(a) == _frame_bytes(b)
    assert _sha(write_prepared(a, tmp_path / "a.parquet")) == _sha(write_prepared(b, tmp_path / "b.parquet"))
    assert not prepare_task("organism_arith", 6, 4, seed=4).equals(a)


def _table(model, tokenizer):
    """A trajectory table sampled from the tiny model, with rewards that vary within prompts."""
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    trajs, _ = sample_trajectories(model, tokenizer, ["1+1=", "2+5="], 3,
                                   SamplingConfig(max_new_tokens=6, seed=0), progress=False)
    return pd.DataFrame([dict(prompt_id=f"p{t.prompt_index}", sample_id=t.sample_id,
                              prompt_ids=t.prompt_ids, gen_ids=t.gen_ids, logprob=t.logprob,
                              reward_accuracy=float(t.sample_id == 0), temperature=1.0)
                         for t in trajs])


def test_attribution_twice_is_bitwise_identical(tiny_qwen2, tmp_path: Path) -> None:
    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.attribution.table import write_attribution

    model, tokenizer = tiny_qwen2
    table = _table(model, tokenizer)
    cfg = IPGConfig(m=4, chunk=2, baseline="noise", seed=5, max_residual=None)
    shas, frames = [], []
    for run in range(2):
        att = attribute(model, table, "neurons", cfg, progress=False)
        frames.append(att.scores)
        path = tmp_path / f"{run}.parquet"
        write_attribution(att, path, tmp_path / f"{run}.json")
        shas.append(_sha(path))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
    # pyarrow writes no timestamp into parquet metadata, so the file bytes themselves match
    assert shas[0] == shas[1]
    m0, m1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2))
    m0.pop("wall_seconds"), m1.pop("wall_seconds")
    assert m0 == m1


@pytest.fixture(scope="module")
def sampled(tiny_qwen2_dir, tmp_path_factory):
    """run_sampling twice with the same seed on a prepared organism_arith file."""
    from ipg.tasks.prepare import prepare_task, write_prepared
    from ipg.config.jobs import SamplingSettings
    from ipg.study.trajectories import run_sampling

    tmp = tmp_path_factory.mktemp("sampling")
    prepared = write_prepared(prepare_task("organism_arith", 2, 1, seed=0), tmp / "arith.parquet")
    sampling = SamplingSettings(samples_per_prompt=3, max_new_tokens=8, temperature=1.0,
                                prompts_per_batch=2)
    for run in ("a", "b"):
        run_sampling(str(tiny_qwen2_dir), str(prepared), "organism_arith", False, "attribution", 11,
                     sampling, str(tmp / f"{run}.parquet"), str(tmp / f"{run}.json"), progress=False)
    return tmp


def test_run_sampling_twice_gives_identical_tables(sampled: Path) -> None:
    from ipg.study.trajectories import read_trajectories

    a, b = read_trajectories(sampled / "a.parquet"), read_trajectories(sampled / "b.parquet")
    assert _frame_bytes(a) == _frame_bytes(b)
    assert _sha(sampled / "a.parquet") == _sha(sampled / "b.parquet")


def _check_provenance(metrics: dict, seed_keys: dict) -> None:
    assert set(metrics) >= {"params", "config_hash", "versions"}
    for key, value in seed_keys.items():
        assert metrics["params"][key] == value
    assert {"python", "torch", "transformers", "numpy", "pandas"} <= set(metrics["versions"])
    assert all(isinstance(v, str) and v for v in metrics["versions"].values())
    from ipg.config.study import config_hash

    assert metrics["config_hash"] == config_hash(metrics["params"])
    assert len(metrics["config_hash"]) == 12


def test_run_sampling_metrics_record_provenance(sampled: Path) -> None:
    a = json.loads((sampled / "a.json").read_text())
    b = json.loads((sampled / "b.json").read_text())
    _check_provenance(a, {"seed": 11, "samples_per_prompt": 3})
    assert a["config_hash"] == b["config_hash"]


def test_run_ipg_metrics_record_provenance(sampled: Path, tiny_qwen2_dir) -> None:
    from ipg.attribution.run import run_ipg

    table = pd.read_parquet(sampled / "a.parquet")
    table["reward_accuracy"] = (table["sample_id"] == 0).astype(float)  # rewards that vary
    traj = sampled / "varied.parquet"
    table.to_parquet(traj)
    shas = []
    for run in ("x", "y"):
        metrics = run_ipg(tiny_qwen2_dir, traj, "heads", {"m": 4, "chunk": 4, "seed": 9,
                                                          "baseline": "noise", "max_residual": None},
                          sampled / f"{run}.parquet", sampled / f"{run}-ipg.json", progress=False)
        saved = json.loads((sampled / f"{run}-ipg.json").read_text())
        _check_provenance(saved, {"seed": 9, "m": 4, "granularity": "heads"})
        assert saved["config_hash"] == metrics["config_hash"]
        shas.append(_sha(sampled / f"{run}.parquet"))
    assert shas[0] == shas[1]
