"""Fixtures for the attribution tests (helpers live in tiny_models.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # tests here import tiny_models
from tiny_models import tiny_model  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)  # tiny models: thread overhead dominates on a shared 2-core CPU


@pytest.fixture(scope="module")
def qwen() -> nn.Module:
    return tiny_model("qwen2", init=0.15)  # non-linear path, monotone quadrature error


@pytest.fixture(scope="module")
def llama() -> nn.Module:
    return tiny_model("llama", seed=1, init=0.15)
