"""Training: a short run writes a loadable folder; the same seed gives the same model."""
import csv
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ipg.errors import IPGError
from ipg.organism.evaluate import evaluate, parse_answer
from ipg.organism.tokenizer import build_tokenizer
from ipg.organism.traces import TraceConfig, max_completion_tokens, sample_problems
from ipg.organism.config import OrganismConfig
from ipg.organism.train import make_batch, train

TINY = dict(hidden_size=32, intermediate_size=64, n_layers=2, n_heads=2, n_kv_heads=2,
            batch_size=8, n_eval=8, n_heldout=8, threads=1, skip_early_sampling=False)


def test_batch_masks_the_question() -> None:
    tok = build_tokenizer()
    b = make_batch([("Q 1+2; ", "1+2=3; ans 3"), ("Q 5+5+5; ", "5+5=10; 10+5=15; ans 15")], tok)
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape
    row = b["labels"][0]
    supervised = row[row != -100].tolist()
    assert tok.decode(supervised) == "1+2=3; ans 3<eos>"
    assert b["attention_mask"][0].sum() == len(tok("Q 1+2; 1+2=3; ans 3")["input_ids"]) + 1
    assert b["attention_mask"][0, -1] == 0 and b["labels"][0, -1] == -100  # right padding


def test_twenty_steps_build_a_loadable_folder(tmp_path) -> None:
    cfg = OrganismConfig(steps=20, eval_every=10, **TINY)
    m = train(tmp_path, cfg, log=lambda s: None)
    for f in ("config.json", "model.safetensors", "tokenizer.json", "training_curve.csv", "metrics.json"):
        assert (tmp_path / f).is_file(), f
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert model.config.model_type == "qwen2" and type(tok).__name__ == "Qwen2Tokenizer"
    assert tok("Q 1+2; ")["input_ids"] == build_tokenizer()("Q 1+2; ")["input_ids"]
    assert model.num_parameters() == m["n_params"] == json.loads((tmp_path / "metrics.json").read_text())["n_params"]
    rows = list(csv.DictReader(open(tmp_path / "training_curve.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert rows[9]["sampled_acc"] != "" and rows[8]["sampled_acc"] == ""
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert m["selected_step"] in (10, 20)
    # the saved checkpoint generates through the public API
    r = evaluate(model, tok, sample_problems(4, 0, "val", cfg.traces), max_completion_tokens(cfg.traces))
    assert 0 <= r.sampled_acc <= 1 and r.mean_len > 0


def test_same_seed_same_model(tmp_path) -> None:
    def weights(seed: int, d: str) -> dict[str, torch.Tensor]:
        train(tmp_path / d, OrganismConfig(seed=seed, steps=3, eval_every=3, **TINY), log=lambda s: None)
        return AutoModelForCausalLM.from_pretrained(tmp_path / d).state_dict()

    a, b, c = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_unknown_param_is_one_line_error() -> None:
    with pytest.raises(IPGError, match="unknown organism param.*hiden_size"):
        OrganismConfig.from_params({"hiden_size": 3})


def test_parse_answer() -> None:
    assert parse_answer("7+3=10; ans 10") == "10"
    assert parse_answer("7+3=10; check 7+3=10 ok") is None


@pytest.mark.slow
def test_default_organism_is_in_the_accuracy_band(tmp_path) -> None:
    """Trains the real default (minutes): the selected checkpoint is informative to sample."""
    m = train(tmp_path, OrganismConfig())
    assert m["selected_in_band"]
    assert 0.30 <= m["selection"]["sampled_acc"] <= 0.85  # on the validation questions
    assert 0.30 <= m["sampled_acc"] <= 0.85  # re-measured on held-out test questions
    assert m["greedy_acc"] >= m["sampled_acc"] + 0.10
    assert m["std_len"] > 3  # self-checks make the length vary under sampling
