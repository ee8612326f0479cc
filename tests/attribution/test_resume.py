"""Resumable attribution (ipg.core.checkpoint): a run killed after a chunk of prompts and rerun
gives the same table, bitwise, as an uninterrupted run without checkpoints, for every
chunked kind (ipg, ig_likelihood, gxa); run_method removes the store on success and never
reuses a store written for other inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ipg.attribution.methods import CHUNKED, MethodSpec, run_attribution
from ipg.attribution.run import run_method
from ipg.attribution.table import read_attribution
from ipg.core.checkpoint import ChunkStore
from tiny_models import Killed, kill_after, sample_table

FAST = {"m": 4, "chunk": 2, "max_residual": None}
CASES = [  # (kind, params): every chunked kind; ipg with a dataset-mean h' and on heads too
    ("ipg", {**FAST}),
    ("ipg", {**FAST, "baseline": "mean", "advantage": "grpo"}),
    ("ig_likelihood", {**FAST}),
    ("gxa", {}),
]




@pytest.fixture(scope="module")
def table(qwen) -> pd.DataFrame:
    return sample_table(qwen, n_prompts=5, G=3, seed=11)


def run(model, table, gran, kind, params, store=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_attribution(model, table, gran, {"kind": kind, **params}, None, False,
                               store=store)


def test_chunked_kinds() -> None:
    assert set(CHUNKED) == {"ipg", "ig_likelihood", "gxa"}


@pytest.mark.parametrize("gran", ["neurons", "heads"])
@pytest.mark.parametrize("kind,params", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_resumed_equals_uninterrupted_bitwise(qwen, table, tmp_path, gran, kind, params) -> None:
    reference = run(qwen, table, gran, kind, params)  # no checkpoints at all
    assert np.abs(reference.per_prompt).sum() > 0  # a real signal, not all zeros
    with pytest.raises(Killed):  # 5 prompts in chunks of 2: killed after the second chunk
        run(qwen, table, gran, kind, params,
            ChunkStore(tmp_path / "s", "k", 2, after_save=kill_after("00001")))
    assert sorted(p.name for p in (tmp_path / "s").glob("chunk-*")) == [
        "chunk-00000.npz", "chunk-00001.npz"]
    store = ChunkStore(tmp_path / "s", "k", 2)
    resumed = run(qwen, table, gran, kind, params, store)
    assert store.resumed == 2  # two chunks loaded, the third computed
    assert resumed.prompt_ids == reference.prompt_ids
    assert resumed.per_prompt.tobytes() == reference.per_prompt.tobytes()
    pd.testing.assert_frame_equal(resumed.scores, reference.scores, check_exact=True)
    for key in ("sum_scores", "phi_delta", "completeness_residual", "n_trajectories"):
        assert resumed.metrics.get(key) == reference.metrics.get(key), key


def test_run_method_removes_the_store_and_discards_a_stale_one(tiny_qwen2_dir, tmp_path) -> None:
    from ipg.models.load import load_model

    model, _ = load_model(tiny_qwen2_dir)
    traj = sample_table(model, n_prompts=3, G=3, max_new=4, seed=2)
    traj = traj.assign(reward_length=[1.0, 2.0, 3.0] * 3, prompt="q", answer="a", text="t",
                       pred="a")
    path = tmp_path / "traj.parquet"
    traj.to_parquet(path)
    method = MethodSpec.parse({"kind": "ipg", "reward": "length", **FAST})
    out = tmp_path / "out"
    run_method(tiny_qwen2_dir, path, "neurons", method, out / "ref.parquet", out / "ref.json",
               progress=False)
    # a stale store (other key) whose chunk would corrupt the table if it were reused
    stale = ChunkStore.for_output(out / "ipg.parquet", "another config", chunk_size=2)
    ref = read_attribution(out / "ref.parquet")
    n_units = len(ref.scores)
    stale.save("00000", {"per_prompt": np.full((2, n_units), 1e9), "phi_h": np.zeros(2),
                         "delta": np.zeros(2), "lp_diff": np.zeros(0),
                         "n_tokens": np.zeros(0, np.int64), "reward_path": np.zeros(4)})
    run_method(tiny_qwen2_dir, path, "neurons", method, out / "ipg.parquet", out / "ipg.json",
               progress=False, chunk_prompts=2)
    assert not stale.folder.exists()  # removed once the table was written
    got = read_attribution(out / "ipg.parquet")
    assert got.per_prompt.tobytes() == ref.per_prompt.tobytes()
    pd.testing.assert_frame_equal(got.scores, ref.scores, check_exact=True)
