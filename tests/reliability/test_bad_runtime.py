"""Bad inputs met at run time: G = 1 with a leave-one-out advantage, k larger than the number
of units, a negative gamma, a prompt longer than the model's context, non-finite activations or
gradients in the IPG engine, and all rewards equal (zero advantage: a warning and a clearly
labelled empty result, not an error). Harness: reliability_catalogue."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from reliability_catalogue import case_registry, check_case, trajectory_table

CASES, case = case_registry("test_bad_runtime")


def _attribute(model, granularity: str = "neurons", rewards: list[float] | None = None,
               **cfg: Any) -> Callable[[], Any]:
    from ipg.attribution.ipg import IPGConfig, attribute

    table = trajectory_table(rewards=rewards).drop(columns=["logprob"])
    return lambda: attribute(model, table, granularity, IPGConfig(m=4, chunk=4, **cfg), progress=False)


# -- sizes and values --------------------------------------------------------------------------------

@case("advantage: G = 1 with leave-one-out")
def _(ctx):
    import torch

    from ipg.attribution.advantages import advantages

    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    return lambda: advantages(rewards, "loo", mask=mask), ["'loo'", "prompt row 1 has 1"], \
        "sample more per prompt or set advantage: raw"


@case("selection: k larger than the number of units")
def _(ctx):
    import pandas as pd

    from ipg.attribution.table import select_units

    frame = pd.DataFrame({"unit": [f"L0.attn.h{i}" for i in range(4)], "layer": 0,
                          "score": [0.1, 0.4, -0.2, 0.0], "granularity": "heads"})
    return lambda: select_units(frame, 16), ["k=16", "4 units", "heads"], "lower k"


@case("steering: negative gamma")
def _(ctx):
    from ipg.core.intervention import steer

    model, _ = ctx.fixture("tiny_qwen2")

    def call():
        with steer(model, ["L0.mlp.n1"], -1.0):
            pass
    return call, ["gamma", "-1.0"], "finite number in [0, 1000]"


@case("steering: gamma beyond the float range of activations (1e30)")
def _(ctx):
    from ipg.core.intervention import steer

    model, _ = ctx.fixture("tiny_qwen2")

    def call():  # gamma = 1e30 gave all-zero logits, 1e300 a raw overflow RuntimeError
        with steer(model, ["L0.mlp.n1"], 1e30):
            pass
    return call, ["gamma", "1e+30"], "finite number in [0, 1000]"


@case("sampling: prompt longer than the model's context")
def _(ctx):
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    model, tokenizer = ctx.fixture("tiny_qwen2")
    limit = model.config.max_position_embeddings
    prompts = ["1+1=", "x" * (limit + 10)]
    return (lambda: sample_trajectories(model, tokenizer, prompts, 2, SamplingConfig(max_new_tokens=8),
                                        progress=False),
            ["prompt 1", f"context {limit}"], "shorten the prompt or lower max_new_tokens")


# -- the IPG engine on non-finite numbers and on zero advantages -------------------------------------

@case("IPG: non-finite activations (NaN weight)")
def _(ctx):
    import torch

    model = copy.deepcopy(ctx.fixture("tiny_qwen2")[0])
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    return _attribute(model), ["non-finite", "prompt_id 'p0'"], "load it in float32"


@case("IPG: non-finite gradients")
def _(ctx):
    import torch

    model = copy.deepcopy(ctx.fixture("tiny_qwen2")[0])

    def nan_grad(module, args, output):  # forward unchanged; d/dx sqrt(0 * x) = inf * 0 = NaN
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden + torch.sqrt(hidden * 0.0)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    model.model.layers[1].register_forward_hook(nan_grad)
    return _attribute(model), ["non-finite score", "unit 'L0.mlp.n", "prompt_id 'p0'"], \
        "check its weights"


@case("IPG: all rewards equal (zero advantage)", kind="warning")
def _(ctx):
    model, _ = ctx.fixture("tiny_qwen2")
    return _attribute(model, "heads", rewards=[1.0, 1.0, 1.0]), \
        ["zero advantages", "empty_result: true"], "sample more trajectories per prompt"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_runtime_input_fails_with_one_clear_line(name: str, tmp_path: Path, monkeypatch,
                                                     request) -> None:
    check_case(CASES[name], tmp_path, monkeypatch, request)


def test_all_rewards_equal_gives_labelled_empty_result(tiny_qwen2, tmp_path: Path) -> None:
    import numpy as np

    from ipg.attribution.ipg import IPGConfig, attribute
    from ipg.attribution.table import read_attribution, write_attribution

    model, _ = tiny_qwen2
    table = trajectory_table(rewards=[1.0, 1.0, 1.0]).drop(columns=["logprob"])
    with pytest.warns(UserWarning, match="zero advantages") as record:
        att = attribute(model, table, "heads", IPGConfig(m=4, chunk=4), progress=False)
    assert any("empty_result" in str(w.message) for w in record)
    assert att.metrics["empty_result"] is True and att.metrics["n_prompts_nonzero_advantage"] == 0
    assert np.isfinite(att.scores["score"]).all() and (att.scores["score"] == 0).all()
    assert att.metrics["completeness_residual"] == 0.0
    write_attribution(att, tmp_path / "a.parquet", tmp_path / "a.json")
    back = read_attribution(tmp_path / "a.parquet", tmp_path / "a.json")
    assert back.metrics["empty_result"] is True and len(back.scores) == len(att.scores)


def test_varying_rewards_are_not_labelled_empty(tiny_qwen2) -> None:
    from ipg.attribution.ipg import IPGConfig, attribute

    model, _ = tiny_qwen2
    table = trajectory_table().drop(columns=["logprob"])
    att = attribute(model, table, "heads", IPGConfig(m=4, chunk=4, max_residual=None), progress=False)
    assert att.metrics["empty_result"] is False
