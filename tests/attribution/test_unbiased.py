"""The policy-gradient estimator of Eq. 1 is unbiased: checked against the exact gradient of
J(h) = sum over ALL trajectories pi(tau; h) R(tau), enumerated on a tiny model with a 4-token
vocabulary (token 3 ends a trajectory) and a 3-token horizon (40 trajectories).

A single path point at alpha = 1 with a zero baseline (riemann_right, m = 1) makes IPG the
score-function estimate of dJ(s * h_i)/ds at s = 1 for every neuron i, with LOO advantages:
    (1/G) sum_j A_j sum_t h_i,t d log pi(tau_j)/dh_i,t.
Its mean over independent groups must match autograd on the enumerated J within ~3 standard
errors, and the standard error must shrink like 1/sqrt(groups)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from ipg.attribution.ipg import IPGConfig, attribute
from ipg.attribution.quadrature import nodes_weights
from tiny_models import tiny_model

V, EOS, H, PROMPT, LAYER = 4, 3, 3, [0, 1, 2], 0


def all_trajectories() -> list[list[int]]:
    out: list[list[int]] = []

    def grow(prefix: list[int]) -> None:
        if len(prefix) == H:
            out.append(prefix)  # truncated at the horizon
            return
        for tok in range(V):
            (out.append(prefix + [tok]) if tok == EOS else grow(prefix + [tok]))

    grow([])
    return out


TRAJ = all_trajectories()
R = torch.tensor([g.count(2) + (0.5 if g[-1] == EOS else 0.0) for g in TRAJ], dtype=torch.float64)


def log_pi_all(model, scale: torch.Tensor | None = None) -> torch.Tensor:
    """log pi(tau) [40] for every trajectory, neurons of LAYER multiplied by `scale` [d_ff]."""
    ids = torch.zeros(len(TRAJ), len(PROMPT) + H, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, g in enumerate(TRAJ):
        ids[j, : len(PROMPT) + len(g)] = torch.tensor(PROMPT + g)
        mask[j, : len(PROMPT) + len(g)] = 1
    mlp = model.model.layers[LAYER].mlp.down_proj
    h = None if scale is None else mlp.register_forward_pre_hook(lambda m, a: (a[0] * scale,))
    logp = torch.log_softmax(model(ids, attention_mask=mask).logits, dim=-1)
    if h is not None:
        h.remove()
    picked = [sum(logp[j, len(PROMPT) + t - 1, tok] for t, tok in enumerate(g)) for j, g in enumerate(TRAJ)]
    return torch.stack(picked)


def exact_grad(model) -> tuple[torch.Tensor, float]:
    """dJ/ds at s = 1 for every neuron of LAYER [d_ff], and sum_tau pi(tau)."""
    s = torch.ones(model.config.intermediate_size, dtype=torch.float64, requires_grad=True)
    p = log_pi_all(model, s).exp()
    (grad,) = torch.autograd.grad((p * R).sum(), s)
    return grad, float(p.detach().sum())


def sample_groups(probs: torch.Tensor, n: int, g: int, seed: int) -> pd.DataFrame:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(probs, n * g, replacement=True, generator=gen).view(n, g)
    return pd.DataFrame([
        dict(prompt_id=f"g{i}", sample_id=j, prompt_ids=PROMPT, gen_ids=TRAJ[k],
             reward_accuracy=float(R[k]), temperature=1.0)
        for i in range(n) for j, k in enumerate(idx[i].tolist())
    ])


@pytest.fixture(scope="module")
def small():
    return tiny_model("llama", vocab=V, seed=2, init=0.3)


def score_function_estimates(model, table: pd.DataFrame, advantage: str = "loo") -> np.ndarray:
    cfg = IPGConfig(layers=[LAYER], quadrature="riemann_right", m=1, advantage=advantage,
                    max_residual=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return attribute(model, table, "neurons", cfg, progress=False).per_prompt.astype(np.float64)


def test_loo_estimator_is_unbiased(small) -> None:
    exact, total = exact_grad(small)
    assert total == pytest.approx(1.0, abs=1e-12)  # the enumeration is the whole distribution
    with torch.no_grad():
        probs = log_pi_all(small).exp()
    n, g = 400, 4
    est = score_function_estimates(small, sample_groups(probs, n, g, seed=0))  # [n, d_ff]
    mean = est.mean(0)
    se = est.std(0, ddof=1) / np.sqrt(n)
    z = (mean - exact.numpy()) / se
    top = np.argsort(-np.abs(exact.numpy()))[:8]
    print("exact", exact.numpy()[top].round(4), "\nmean ", mean[top].round(4), "\nse   ",
          se[top].round(4), "\nz", z[top].round(2), "max|z| over all", np.abs(z).max().round(2))
    assert np.abs(z[top]).max() < 3.0
    assert np.abs(z).max() < 4.0  # 64 neurons
    assert np.mean(np.abs(z) > 2) < 0.15
    # the estimate is informative: the largest exact gradients are many standard errors from 0
    assert np.abs(exact.numpy()[top[0]]) > 4 * se[top[0]]
    # standard error shrinks like 1/sqrt(n): a quarter of the groups doubles it
    se_quarter = est[: n // 4].std(0, ddof=1) / np.sqrt(n // 4)
    ratio = np.median(se_quarter / se)
    print("se(n/4) / se(n) median:", ratio.round(3))
    assert 1.6 < ratio < 2.5


def sampler_from_enumeration(model, prompts: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Exact on-policy sampling under whatever intervention is active on `model`."""
    with torch.no_grad():
        probs = log_pi_all(model).exp()
    frame = sample_groups(probs, 1, int(prompts["n_samples"].iloc[0]), seed)
    return frame.assign(prompt_id=prompts["prompt_id"].iloc[0])


def test_onpolicy_path_estimates_j_difference(small) -> None:
    """On-policy IPG (resampling at every path point) sums to J(h) - J(h') in expectation."""
    def j_at(alpha: float) -> float:
        s = torch.full((small.config.intermediate_size,), alpha, dtype=torch.float64)
        with torch.no_grad():
            return float((log_pi_all(small, s).exp() * R).sum())

    m = 8
    target = j_at(1.0) - j_at(0.0)
    a, w = nodes_weights("gauss_legendre", m)  # the quadrature itself is accurate here
    eps = 1e-5
    quad = sum(wk * (j_at(ak + eps) - j_at(ak - eps)) / (2 * eps) for ak, wk in zip(a, w))
    assert quad == pytest.approx(target, rel=1e-2)
    # in expectation the estimator gives the quadrature of dJ/dalpha: compare with that
    target = quad
    n, g = 60, 4
    with torch.no_grad():
        probs = log_pi_all(small).exp()
    table = sample_groups(probs, n, g, seed=1)
    cfg = IPGConfig(layers=[LAYER], path="onpolicy", m=m, max_residual=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        att = attribute(small, table, "neurons", cfg, progress=False, sampler=sampler_from_enumeration)
    totals = att.per_prompt.astype(np.float64).sum(1)  # [n] one estimate of J(h) - J(h') each
    mean, se = totals.mean(), totals.std(ddof=1) / np.sqrt(n)
    print(f"J(h) - J(h') = {target:.4f}; on-policy IPG {mean:.4f} +- {se:.4f}")
    assert abs(mean - target) < 3.0 * se
    assert abs(target) > 3 * se
    path = att.metrics["reward_along_path"]
    assert len(path["alpha"]) == m and path["mean_reward"][-1] == pytest.approx(j_at(a[-1]), abs=0.3)
