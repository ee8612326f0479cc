"""The public API (`import ipg`): sample, attribute (registered or callable reward), select,
steer, on a tiny random model; and examples/quickstart.py run as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ipg
from ipg.errors import IPGError
from ipg.models.tiny import tiny_random_model

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["1 + 1 =", "abc", "Say hi"]


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return tiny_random_model("qwen2", seed=1)


@pytest.fixture(scope="module")
def traj(tiny):
    model, tok = tiny
    return ipg.sample(model, tok, PROMPTS, n_samples=4, max_new_tokens=8, answers=["2", "x", "hi"],
                      grader="exact")


def test_sample_table(tiny, traj) -> None:
    model, tok = tiny
    assert len(traj) == 12 and set(traj["prompt_id"]) == {"p0", "p1", "p2"}
    for row in traj.itertuples():
        assert row.prompt_ids == tok(PROMPTS[int(row.prompt_id[1:])], add_special_tokens=False)["input_ids"]
        assert 1 <= len(row.gen_ids) <= 8 and row.text == tok.decode(row.gen_ids, skip_special_tokens=True)
        assert row.reward_accuracy == float(row.pred is not None and row.pred.strip().lower() == row.answer)
    with pytest.raises(IPGError, match="unknown grader"):
        ipg.sample(model, tok, PROMPTS, grader="fuzzy")


def test_callable_reward_equals_the_same_values_as_a_column(tiny, traj) -> None:
    """A callable reward gives the scores of a registered reward column holding the same values."""
    model, _ = tiny

    def distinct_even(row) -> float:
        return float(len(set(row.gen_ids)) % 2 == 0)

    values = [distinct_even(r) for r in traj.itertuples(index=False)]
    before = traj["reward_accuracy"].tolist()
    assert len(set(values)) == 2  # the reward varies: scores are not trivially zero
    column = traj.assign(reward_accuracy=values)
    by_name = ipg.attribute(model, column, "heads", reward="accuracy", m=8, max_residual=None)
    by_fn = ipg.attribute(model, traj, "heads", reward=distinct_even, m=8, max_residual=None)
    assert by_fn.metrics["reward"] == "callable:distinct_even" and by_name.metrics["reward"] == "accuracy"
    assert by_fn.scores["score"].abs().max() > 0
    assert by_fn.scores["score"].tolist() == pytest.approx(by_name.scores["score"].tolist(), rel=1e-9, abs=1e-12)
    assert by_fn.metrics["completeness_residual_pooled"] < 0.05
    assert traj["reward_accuracy"].tolist() == before  # the caller's table is not modified
    with pytest.raises(IPGError, match="no column reward_custom"):
        ipg.attribute(model, traj, "heads", reward="custom")


def test_baseline_method_and_steer(tiny, traj) -> None:
    model, tok = tiny
    att = ipg.attribute(model, traj, "neurons", method="act")
    units = ipg.select_units(att, k=64, mode="magnitude")
    assert len(units) == 64 and all(u.startswith("L") and ".mlp.n" in u for u in units)
    ids = tok("What is two plus two", return_tensors="pt")["input_ids"]
    base = model(ids).logits
    with ipg.steer(model, units, gamma=0.0):
        steered = model(ids).logits
    assert (steered - base).abs().max() > 1e-4
    torch.testing.assert_close(model(ids).logits, base)  # hooks removed after the block


def test_quickstart_example_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "256 neurons scored" in run.stdout and "completions changed" in run.stdout
