"""Sampling: stored log-probs are the sampler's, prompt-cache sharing and batch dropping are exact."""
import sys
from pathlib import Path

import pytest
import torch

from ipg.errors import IPGError
from ipg.core.sampling import SamplingConfig, sample_trajectories

sys.path.insert(0, str(Path(__file__).parent / "attribution"))
from tiny_models import CharTokenizer  # noqa: E402
from tiny_models import tiny_sampler_model as tiny_model  # noqa: E402




def teacher_forced_logprob(model, prompt_ids, gen_ids, temperature):
    ids = torch.tensor([prompt_ids + gen_ids])
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits / temperature, -1)
    return logp.gather(-1, torch.tensor(gen_ids)[:, None]).sum().item()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_match_teacher_forcing(temperature):
    model = tiny_model()
    prompts = ["abc", "hello world", "x"]  # different lengths exercise left padding
    cfg = SamplingConfig(temperature=temperature, max_new_tokens=12, prompts_per_batch=2, seed=3)
    trajs, stats = sample_trajectories(model, CharTokenizer(), prompts, 4, cfg, progress=False)
    assert len(trajs) == 12 and stats["generated_tokens"] > 0
    assert {(t.prompt_index, t.sample_id) for t in trajs} == {(p, s) for p in range(3) for s in range(4)}
    for t in trajs:
        ref = teacher_forced_logprob(model, t.prompt_ids, t.gen_ids, temperature)
        assert t.logprob == pytest.approx(ref, abs=1e-4)
        assert t.truncated == (t.gen_ids[-1] != 1)
        assert len(t.gen_ids) <= 12
        assert 1 not in t.gen_ids[:-1]  # nothing is generated after eos


def test_same_seed_same_tokens_and_seed_changes_them():
    model = tiny_model()
    run = lambda seed: [t.gen_ids for t in sample_trajectories(
        model, CharTokenizer(), ["abc", "de"], 3, SamplingConfig(max_new_tokens=8, seed=seed),
        progress=False)[0]]
    assert run(0) == run(0)
    assert run(0) != run(1)


def test_first_token_distribution_matches_softmax():
    model = tiny_model()
    prompt = "ab"
    ids = CharTokenizer()(prompt)["input_ids"]
    probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1], -1)
    n = 3000
    trajs, _ = sample_trajectories(model, CharTokenizer(), [prompt], n,
                                   SamplingConfig(max_new_tokens=1, seed=0), progress=False)
    counts = torch.bincount(torch.tensor([t.gen_ids[0] for t in trajs]), minlength=16).double() / n
    stderr = (probs * (1 - probs) / n).sqrt()
    assert torch.all((counts - probs).abs() <= 4 * stderr + 1e-3)


def test_bad_inputs_are_one_line_errors():
    model = tiny_model()
    with pytest.raises(IPGError, match="temperature"):
        SamplingConfig(temperature=0)
    with pytest.raises(IPGError, match="G"):
        sample_trajectories(model, CharTokenizer(), ["a"], 0, SamplingConfig(), progress=False)
    with pytest.raises(IPGError, match="context"):
        sample_trajectories(model, CharTokenizer(), ["a" * 100], 1,
                            SamplingConfig(max_new_tokens=64), progress=False)
