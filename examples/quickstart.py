"""IPG in a notebook's few lines: sample, attribute a reward, select units, steer.

    python examples/quickstart.py                  # a tiny random Qwen2 (seconds, CPU)
    python examples/quickstart.py --model DIR      # any supported HF causal LM folder

The reward here is a Python callable (the share of digits in a completion); a registered
name ("length", or "accuracy" when answers are given to ipg.sample) works the same way.
"""
from __future__ import annotations

import argparse

import torch

import ipg


def digit_share(row) -> float:
    """The outcome: the fraction of a completion's characters that are digits."""
    return sum(c.isdigit() for c in row.text) / max(len(row.text), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model folder (default: a tiny random Qwen2)")
    parser.add_argument("--k", type=int, default=32, help="units to steer (default 32)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    else:
        from ipg.models.tiny import tiny_random_model

        model, tok = tiny_random_model("qwen2")
    prompts = ["What is 2 + 3?", "Count to five:", "Name a prime number."]

    traj = ipg.sample(model, tok, prompts, n_samples=6, max_new_tokens=16, seed=0)
    att = ipg.attribute(model, traj, "neurons", reward=digit_share, m=16)
    print(f"{len(att.scores)} neurons scored; completeness residual "
          f"{att.metrics['completeness_residual_pooled']:.2e}")
    units = ipg.select_units(att, k=args.k)
    print("top units:", ", ".join(units))

    base = traj.apply(digit_share, axis=1).mean()
    with ipg.steer(model, units, gamma=0.0):  # ablate them during generation
        steered = ipg.sample(model, tok, prompts, n_samples=6, max_new_tokens=16, seed=0)
    changed = int((steered["text"] != traj["text"]).sum())
    print(f"top {args.k} neurons ablated: {changed}/{len(traj)} completions changed; mean digit "
          f"share {base:.3f} -> {steered.apply(digit_share, axis=1).mean():.3f}")


if __name__ == "__main__":
    main()
