"""Shared fixtures: tiny random models of the study's architectures (built in well under a second).

Imports are inside the fixtures so that collecting any test never imports the model registry.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline and quiet by default, however the tests are started (make test exports the same).
for _key, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                     "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def tiny_qwen2():
    """(model, tokenizer): 2-layer random Qwen2, 4 heads / 2 KV heads, character tokenizer."""
    from ipg.models.tiny import tiny_random_model

    return tiny_random_model("qwen2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama():
    """(model, tokenizer): 2-layer random Llama, 4 heads / 2 KV heads, character tokenizer."""
    from ipg.models.tiny import tiny_random_model

    return tiny_random_model("llama", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    """A model folder (safetensors + tokenizer + model_card.json) built by `build_model('tiny-qwen2')`."""
    from ipg.models.load import build_model

    return build_model("tiny-qwen2", tmp_path_factory.mktemp("models") / "tiny-qwen2")
