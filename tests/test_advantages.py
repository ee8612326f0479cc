"""Advantages (ipg.attribution.advantages) against their closed forms."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ipg.errors import IPGError
from ipg.attribution.advantages import advantages, group_rewards


def test_loo_matches_definition_and_scaled_centering() -> None:
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0], [3.0, -1.0, 2.0, 0.5, 7.0]])
    a = advantages(r, "loo")
    for i in range(2):
        for j in range(5):
            others = torch.cat([r[i, :j], r[i, j + 1:]])
            assert a[i, j] == pytest.approx(float(r[i, j] - others.mean()), abs=1e-6)
    g = r.shape[1]  # A_j = G/(G-1) (R_j - mean)
    assert torch.allclose(a, g / (g - 1) * (r - r.mean(1, keepdim=True)), atol=1e-6)


def test_grpo_and_raw() -> None:
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    mean, std = 0.5, float(np.std([1, 0, 0, 1], ddof=1))
    assert torch.allclose(advantages(r, "grpo", eps=0.0), (r - mean) / std)
    assert torch.equal(advantages(r, "raw"), r)


def test_equal_rewards_give_zero_without_nan() -> None:
    r = torch.ones(3, 4)
    for kind in ("loo", "grpo"):
        a = advantages(r, kind)
        assert torch.equal(a, torch.zeros_like(a)) and not torch.isnan(a).any()


def test_single_sample_errors_for_loo() -> None:
    with pytest.raises(IPGError, match="G >= 2"):
        advantages(torch.ones(2, 1), "loo")
    assert torch.equal(advantages(torch.ones(2, 1), "raw"), torch.ones(2, 1))
    with pytest.raises(IPGError, match="unknown advantage"):
        advantages(torch.ones(2, 2), "mean")


def test_ragged_groups_are_masked() -> None:
    frame = pd.DataFrame({
        "prompt_id": ["a", "a", "a", "b", "b"], "sample_id": [2, 0, 1, 0, 1],
        "reward_accuracy": [1.0, 0.0, 0.0, 1.0, 0.0],
    })
    ids, r, mask, groups = group_rewards(frame, "reward_accuracy")
    assert ids == ["a", "b"] and list(groups[0]["sample_id"]) == [0, 1, 2]
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    a = advantages(r, "loo", mask=mask)
    assert torch.allclose(a[0], torch.tensor([-0.5, -0.5, 1.0], dtype=a.dtype))
    assert torch.allclose(a[1], torch.tensor([1.0, -1.0, 0.0], dtype=a.dtype))
    with pytest.raises(IPGError, match="reward_length"):
        group_rewards(frame, "reward_length")
