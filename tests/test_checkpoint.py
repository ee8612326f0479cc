"""ipg.core.checkpoint: chunks are saved atomically and bitwise, a rerun resumes from them, a store
of another key is discarded, clear() removes it; sampling resumed after a kill is identical."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ipg.core.checkpoint import ChunkStore, chunk_ranges, fingerprint, run_chunks
from ipg.core.sampling import SamplingConfig, sample_trajectories

sys.path.insert(0, str(Path(__file__).parent / "attribution"))
from tiny_models import CharTokenizer, Killed, kill_after  # noqa: E402
from tiny_models import tiny_sampler_model as tiny_model  # noqa: E402






def test_chunk_ranges_cover_every_item_once() -> None:
    assert chunk_ranges(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert chunk_ranges(0, 3) == []


def test_payload_round_trips_bitwise(tmp_path) -> None:
    store = ChunkStore(tmp_path / "s", "k")
    x = np.random.default_rng(0).standard_normal((3, 4)) * 1e-300  # subnormal-ish floats
    payload = {"x": x, "ids": np.array(["a", "b"]), "meta": {"f": 0.1 + 0.2, "n": [1, 2]},
               "nan": float("nan")}
    store.save("00000", payload)
    back = ChunkStore(tmp_path / "s", "k").load("00000")
    assert back["x"].dtype == np.float64 and back["x"].tobytes() == x.tobytes()
    assert list(back["ids"]) == ["a", "b"] and back["meta"] == {"f": 0.1 + 0.2, "n": [1, 2]}
    assert back["nan"] != back["nan"]
    assert not list((tmp_path / "s").glob("*.tmp"))  # no temporary file left behind


def test_resume_after_kill_computes_only_missing_chunks(tmp_path) -> None:
    calls: list[range] = []

    def compute(items: range) -> dict:
        calls.append(items)
        return {"v": np.array([np.sqrt(i + 0.5) for i in items])}

    def run(store):
        return np.concatenate([p["v"] for _, p, _ in run_chunks(store, 7, compute)])

    reference = run(None)
    with pytest.raises(Killed):
        run(ChunkStore(tmp_path / "s", "k", 3, after_save=kill_after("00001")))
    assert calls == [range(0, 7), range(0, 3), range(3, 6)]
    calls.clear()
    store = ChunkStore(tmp_path / "s", "k", 3)
    resumed = run(store)
    assert calls == [range(6, 7)] and store.resumed == 2  # chunks 0 and 1 were loaded
    assert resumed.tobytes() == reference.tobytes()
    store.clear()
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("change", ["key", "chunk_size"])
def test_stale_store_is_discarded_with_a_log_line(tmp_path, caplog, change) -> None:
    ChunkStore(tmp_path / "s", "k", 2).save("00000", {"v": np.zeros(2)})
    key, size = ("other", 2) if change == "key" else ("k", 3)
    with caplog.at_level(logging.WARNING, logger="ipg.core.checkpoint"):
        store = ChunkStore(tmp_path / "s", key, size)
    assert "discarding stale chunks" in caplog.text
    assert store.load("00000") is None and store.resumed == 0


def test_fingerprint_follows_inputs_and_params(tmp_path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("a")
    base = fingerprint([f, tmp_path], seed=0)
    assert fingerprint([f, tmp_path], seed=0) == base
    assert fingerprint([f, tmp_path], seed=1) != base
    f.write_text("ab")  # size (and mtime) change
    assert fingerprint([f, tmp_path], seed=0) != base


def test_for_output_puts_the_store_beside_the_output(tmp_path) -> None:
    store = ChunkStore.for_output(tmp_path / "out" / "t.parquet", "k")
    assert store.folder == tmp_path / "out" / "t.parquet.chunks" and store.folder.is_dir()


# -- sampling (chunk = one batch of prompts, its own generator) ---------------------------------
PROMPTS = ["abc", "hello world", "x", "yy", "zzz"]


def _sample(cfg, store=None):
    trajs, stats = sample_trajectories(tiny_model(), CharTokenizer(), PROMPTS, 3, cfg,
                                       progress=False, store=store)
    return [(t.prompt_index, t.sample_id, t.gen_ids, t.logprob, t.truncated, t.entropy)
            for t in trajs], stats


def test_sampling_resumed_after_kill_is_bitwise_identical(tmp_path) -> None:
    cfg = SamplingConfig(max_new_tokens=10, prompts_per_batch=2, seed=4)
    reference, _ = _sample(cfg)
    with pytest.raises(Killed):
        _sample(cfg, ChunkStore(tmp_path / "s", "k", 2, after_save=kill_after("00000")))
    store = ChunkStore(tmp_path / "s", "k", 2)
    resumed, stats = _sample(cfg, store)
    assert store.resumed == 1 and stats["resumed_batches"] == 1
    assert resumed == reference  # tokens, float log-probs and entropies all equal


def test_sampling_batches_are_independent_streams() -> None:
    """A batch's tokens depend on (seed, batch) only: the first batch alone samples the same."""
    cfg = SamplingConfig(max_new_tokens=10, prompts_per_batch=2, seed=4)
    full, _ = _sample(cfg)
    alone, _ = sample_trajectories(tiny_model(), CharTokenizer(), PROMPTS[:2], 3, cfg, progress=False)
    assert [t.gen_ids for t in alone] == [row[2] for row in full[:6]]
    other, _ = _sample(SamplingConfig(max_new_tokens=10, prompts_per_batch=2, seed=5))
    assert [r[2] for r in other] != [r[2] for r in full]
