"""The registered organisms build loadable folders; the distilled one starts from the organism."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.organism.config import OrganismConfig

TINY = dict(hidden_size=32, intermediate_size=64, n_layers=2, n_heads=2, n_kv_heads=2,
            batch_size=8, n_eval=8, n_heldout=8, threads=1, steps=6, eval_every=3)


def test_registered() -> None:
    assert {"organism", "organism-distilled"} <= set(MODELS.names())
    org, dist = MODELS.get("organism"), MODELS.get("organism-distilled")
    assert org.requires == () and dist.requires == ("organism",)
    assert not org.chat and not org.from_hub
    assert OrganismConfig(**org.default_params) == OrganismConfig()
    assert dist.default_params["max_checks"] > OrganismConfig().max_checks


def test_build_organism_then_distilled(tmp_path) -> None:
    org_dir, dist_dir = tmp_path / "organism", tmp_path / "distilled"
    MODELS.get("organism").build(org_dir, dict(TINY))
    MODELS.get("organism-distilled").build(dist_dir, {**TINY, "requires_dirs": {"organism": str(org_dir)}})
    a = AutoModelForCausalLM.from_pretrained(org_dir)
    b = AutoModelForCausalLM.from_pretrained(dist_dir)
    assert a.config.to_dict()["hidden_size"] == b.config.to_dict()["hidden_size"] == 32
    assert any(not torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())  # it trained
    m = json.loads((dist_dir / "metrics.json").read_text())
    assert m["init_dir"] == str(org_dir)
    assert (m["config"]["min_checks"], m["config"]["max_checks"]) == (2, 5)


def test_distilled_without_organism_is_one_line_error(tmp_path) -> None:
    with pytest.raises(IPGError, match="requires_dirs"):
        MODELS.get("organism-distilled").build(tmp_path, {})
    with pytest.raises(IPGError, match="unknown organism param"):
        MODELS.get("organism").build(tmp_path, {"stpes": 3})
