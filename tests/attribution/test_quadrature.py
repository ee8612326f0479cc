"""Quadrature nodes/weights against exact integrals of polynomials on [0, 1]."""
from __future__ import annotations

import numpy as np
import pytest

from ipg.attribution.quadrature import QUADRATURES, nodes_weights
from ipg.errors import IPGError


@pytest.mark.parametrize("m", [1, 3, 8, 32])
def test_gauss_legendre_exact_to_degree_2m_minus_1(m: int) -> None:
    a, w = nodes_weights("gauss_legendre", m)
    for d in range(2 * m):
        assert np.dot(w, a**d) == pytest.approx(1.0 / (d + 1), rel=1e-10)


def test_riemann_rules() -> None:
    for kind in QUADRATURES:
        a, w = nodes_weights(kind, 10)
        assert w.sum() == pytest.approx(1.0) and ((a >= 0) & (a <= 1)).all()
    assert nodes_weights("riemann_left", 4)[0].tolist() == [0, 0.25, 0.5, 0.75]
    assert nodes_weights("riemann_right", 4)[0].tolist() == [0.25, 0.5, 0.75, 1.0]
    a, w = nodes_weights("riemann_mid", 4)  # midpoint is exact for linear functions
    assert np.dot(w, 3 * a + 1) == pytest.approx(2.5)


def test_bad_input() -> None:
    with pytest.raises(IPGError, match="quadrature"):
        nodes_weights("simpson", 4)
    with pytest.raises(IPGError, match="m must"):
        nodes_weights("riemann_mid", 0)
