"""Bootstrap intervals cover the true mean at about the nominal rate; Jaccard by hand."""
from __future__ import annotations

import numpy as np
import pytest

from ipg.errors import IPGError
from ipg.study.statistics import (
    bootstrap_ci, expected_random_jaccard, jaccard, paired_difference,
)

REPS = 200  # coverage estimates have a binomial SE of about 0.015 at 0.95


def coverage(draw, target, **kw) -> float:
    rng = np.random.default_rng(123)
    hits = 0
    for rep in range(REPS):
        ci = bootstrap_ci(draw(rng), n_resamples=1000, seed=rep, **kw)
        hits += ci.lo <= target(rep) <= ci.hi
    return hits / REPS


def test_prompt_bootstrap_covers_the_mean_of_a_known_distribution() -> None:
    cov = coverage(lambda rng: rng.exponential(2.0, size=40), lambda rep: 2.0)
    assert 0.87 <= cov <= 0.99


@pytest.mark.parametrize("scheme, low, high", [("prompts", 0.87, 0.99), ("hierarchical", 0.87, 1.0)])
def test_two_level_bootstrap_covers_the_population_mean(scheme, low, high) -> None:
    # y[p, s] = mu + u_p + e_ps: prompt effects and seed noise, both unit variance
    def draw(rng):
        return 0.5 + rng.normal(size=(20, 1)) + rng.normal(size=(20, 3))

    assert low <= coverage(draw, lambda rep: 0.5, scheme=scheme) <= high


def test_seed_bootstrap_covers_the_mean_over_a_fixed_prompt_set() -> None:
    prompt_effects = np.random.default_rng(7).normal(size=(10, 1))
    target = 0.5 + prompt_effects.mean()  # what rerunning with ever more seeds converges to

    def draw(rng):
        return 0.5 + prompt_effects + rng.normal(size=(10, 25))

    assert 0.87 <= coverage(draw, lambda rep: target, scheme="seeds") <= 0.99


def test_interval_contains_mean_and_degenerate_cases() -> None:
    y = np.random.default_rng(0).normal(size=(12, 2))
    for scheme in ("prompts", "hierarchical", "seeds"):
        ci = bootstrap_ci(y, scheme)
        assert ci.lo <= ci.mean <= ci.hi and ci.mean == pytest.approx(y.mean())
    assert bootstrap_ci(np.full((5, 2), 0.25)) == (0.25, 0.25, 0.25)
    one = bootstrap_ci([[0.3, 0.5]])
    assert one.mean == pytest.approx(0.4) and np.isnan(one.lo) and np.isnan(one.hi)


def test_paired_difference_uses_the_pairing() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(30, 2)) * 3  # large shared prompt / seed variation
    steered = base + 0.4 + 0.05 * rng.normal(size=(30, 2))
    diff = paired_difference(steered, base)
    assert diff.mean == pytest.approx((steered - base).mean())
    assert diff.lo <= 0.4 <= diff.hi and diff.hi - diff.lo < 0.1  # the shared noise cancels
    assert paired_difference(base, base) == (0.0, 0.0, 0.0)
    with pytest.raises(IPGError, match="same prompts"):
        paired_difference(base, base[:-1])


def test_bad_input_is_one_line_error() -> None:
    with pytest.raises(IPGError, match="scheme"):
        bootstrap_ci([1.0, 2.0], scheme="tokens")
    with pytest.raises(IPGError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(IPGError, match="shape"):
        bootstrap_ci([])


def test_jaccard_by_hand() -> None:
    assert jaccard({"a", "b", "c"}, {"b", "c", "d"}) == 2 / 4
    assert jaccard(["L0.mlp.n1"], ["L0.mlp.n1"]) == 1.0
    assert jaccard([], ["x"]) == 0.0 and jaccard([], []) == 1.0


def test_expected_random_jaccard_matches_simulation() -> None:
    rng = np.random.default_rng(0)
    n, k, trials = 20, 5, 20000
    sims = [jaccard(rng.choice(n, k, replace=False), rng.choice(n, k, replace=False))
            for _ in range(trials)]
    se = np.std(sims) / np.sqrt(trials)
    assert expected_random_jaccard(n, k) == pytest.approx(np.mean(sims), abs=4 * se)
    assert expected_random_jaccard(10, 10) == pytest.approx(1.0)
    assert expected_random_jaccard(10, 0, 3) == 0.0


def test_wilson_interval_matches_scipy_and_zero_of_n() -> None:
    """Independent check: scipy's binomtest Wilson interval (no continuity correction)."""
    from scipy.stats import binomtest

    from ipg.study.statistics import wilson_interval

    for k, n in ((0, 96), (3, 20), (20, 20), (48, 96)):
        ref = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)
    lo, hi = wilson_interval(0, 96)
    assert lo == 0.0 and 0.03 < hi < 0.05  # 0 of 96 correct: not "+0.000 [+0.000, +0.000]"


def test_constant_proportions_and_differences_never_get_a_zero_width_interval() -> None:
    from scipy.stats import binomtest

    zeros = np.zeros((48, 2))  # 0 of 96 correct
    ci = bootstrap_ci(zeros, "hierarchical", bounds=(0.0, 1.0))
    ref = binomtest(0, 96).proportion_ci(0.95, method="wilson")
    assert ci.mean == 0 and ci.lo == 0 and ci.hi == pytest.approx(ref.high)
    d = paired_difference(zeros, zeros, bounds=(-1.0, 1.0))
    assert d.mean == 0 and d.lo == pytest.approx(-ref.high) and d.hi == pytest.approx(ref.high)
    ones = bootstrap_ci(np.ones((10, 1)), bounds=(0.0, 1.0))
    assert ones.hi == 1.0 and ones.lo < 1.0
    # unbounded metrics keep the old behaviour; bad bounds are a one-line error
    assert bootstrap_ci(np.full((5, 2), 0.25)) == (0.25, 0.25, 0.25)
    with pytest.raises(IPGError, match="bounds"):
        bootstrap_ci(np.full((5, 2), 0.25), bounds=(0.0, 2.0))


def test_sign_flip_pvalue_is_uniform_under_the_null_and_small_under_an_effect() -> None:
    """Under exchangeable arms, P(p <= 0.05) ~ 0.05 (binomial bound); a clear shift gives p ~ 0."""
    from scipy.stats import binom

    from ipg.study.statistics import sign_flip_pvalue

    rng = np.random.default_rng(7)
    ps = np.array([sign_flip_pvalue(rng.normal(size=(60, 2)), 999, seed=i) for i in range(300)])
    assert (ps <= 0.05).sum() <= binom.ppf(0.99, 300, 0.05)
    assert (ps <= 0.5).mean() == pytest.approx(0.5, abs=0.1)
    assert sign_flip_pvalue(rng.normal(0.5, 1, size=(60, 2)), 999) <= 0.002
