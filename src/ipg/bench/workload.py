"""The benchmark's workload: models, synthetic trajectories, the plain reference, timing.

- `bench_model(spec)`: a random Qwen2 by name (`random-qwen2-medium`, `random-qwen2-tiny`),
  or a model folder / a model built under results/models (organism, smollm2-135m), frozen;
  `spec:L{k}` keeps k decoder layers (a random model is built with k, a loaded one is cut
  to its first k), for the scaling bench.
- `synthetic_table(...)`: n_prompts prompts, each with G trajectories of random token ids
  (fixed prompt / generation length, no padding) with rewards that vary (0, 1, 0, 1, ...), in
  the trajectory table's schema, so the engine runs exactly as in the study.
- `load_average()`: the 1-minute load average (the machine is shared: recorded per row).
- `plain_passes(...)`: the reference IPG is compared with: m teacher-forced forward +
  backward passes of the same batch to an input-embedding leaf with frozen parameters,
  computing the log-prob of the sampled tokens (logits of the generated positions only).
- `interleaved(...)`: repetitions A, B, A, B, ... after one warm-up each; medians.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from torch import Tensor, nn

from ipg.core.units import decoder_layers
from ipg.errors import IPGError

# Random Qwen2 configs by name. "medium": 6 layers, d 256, d_ff 768, vocab 8192 (~9M
# parameters; the LM head is ~1/4 of the FLOPs, as in SmolLM2-135M), big enough that the
# matmuls, not Python, dominate on a CPU; "tiny": the test model (CI, --quick).
RANDOM_MODELS: dict[str, dict] = {
    "random-qwen2-medium": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=6,
                                num_attention_heads=8, num_key_value_heads=2, vocab_size=8192,
                                max_position_embeddings=4096),
    "random-qwen2-tiny": dict(vocab_size=512, max_position_embeddings=4096),
}
DEFAULT_MODEL = "random-qwen2-medium"
TEMPERATURE = 1.0


def load_average() -> float:
    """The 1-minute load average (nan where the OS has none)."""
    import os

    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return float("nan")


def split_layers(spec: str) -> tuple[str, int | None]:
    """'name:L12' -> ('name', 12); 'name' -> ('name', None)."""
    name, sep, k = spec.rpartition(":L")
    if sep and k.isdigit() and int(k) >= 1:
        return name, int(k)
    return spec, None


def bench_model(spec: str, results_dir: str = "results") -> tuple[nn.Module, str]:
    """(frozen eval-mode model, label) for a random-model name, a folder or a built model name,
    optionally suffixed ':L{k}' (k decoder layers)."""
    spec, n_layers = split_layers(spec)
    if spec in RANDOM_MODELS:
        from ipg.models.tiny import tiny_random_model

        extra = {"num_hidden_layers": n_layers} if n_layers else {}
        model, _ = tiny_random_model("qwen2", seed=0, **{**RANDOM_MODELS[spec], **extra})
        return model, spec
    model, label = _load_built(spec, results_dir)
    if n_layers:
        layers = decoder_layers(model)
        if n_layers > len(layers):
            raise IPGError(f"bench model '{spec}:L{n_layers}': the model has {len(layers)} layers")
        keep_layers(model, n_layers)
    return model, label


def keep_layers(model: nn.Module, n_layers: int) -> None:
    """Cut the model to its first n_layers decoder blocks (and its config to match), wherever
    the architecture table says they live (model.model.layers, transformer.h, gpt_neox.layers)."""
    from ipg.models.architecture import architecture, submodule

    parent, _, name = architecture(model).blocks.rpartition(".")
    owner = submodule(model, parent) if parent else model
    setattr(owner, name, nn.ModuleList(list(decoder_layers(model))[:n_layers]))
    model.config.num_hidden_layers = n_layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:n_layers]


def neuron_modules(model: nn.Module) -> list[nn.Module]:
    """Every decoder block's MLP down-projection (its input = the neurons), first to last."""
    from ipg.core.units import get_granularity

    neurons = get_granularity("neurons", model)
    return [neurons.module(layer) for layer in neurons.available_layers()]


def _load_built(spec: str, results_dir: str) -> tuple[nn.Module, str]:
    from ipg.models.built import card_name, find_model_dir
    from ipg.models.load import load_model

    path = find_model_dir(spec, results_dir)
    if path is None:
        raise IPGError(
            f"bench model '{spec}' is neither a folder, a built model under {results_dir}/models/, "
            f"nor one of {', '.join(RANDOM_MODELS)}")
    model, _ = load_model(path)
    label = card_name(path, path.name)
    return model.requires_grad_(False).eval(), label


def synthetic_table(vocab: int, n_traj: int, prompt_len: int, gen_len: int,
                    seed: int = 0, n_prompts: int = 1) -> pd.DataFrame:
    """n_prompts prompts with n_traj trajectories each, of random ids (ids >= 8: no special
    tokens)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n_prompts):
        prompt = torch.randint(8, vocab, (prompt_len,), generator=gen).tolist()
        for j in range(n_traj):
            ids = torch.randint(8, vocab, (gen_len,), generator=gen).tolist()
            rows.append(dict(prompt_id=f"p{i}", sample_id=j, prompt_ids=prompt, gen_ids=ids,
                             reward_accuracy=float(j % 2), reward_length=float(gen_len),
                             temperature=TEMPERATURE))
    return pd.DataFrame(rows)


@dataclass
class DenseBatch:
    """The table's trajectories as dense tensors (all the same length, no padding)."""

    ids: Tensor  # [G, P + T] long
    mask: Tensor  # [G, P + T] long (all ones)
    targets: Tensor  # [G, T] long: the generated tokens
    coef: Tensor  # [G] float64: A_j / G with leave-one-out advantages
    prompt_len: int

    @property
    def gen_len(self) -> int:
        return int(self.targets.shape[1])


def dense_batch(table: pd.DataFrame) -> DenseBatch:
    rows = table.sort_values("sample_id")
    seqs = [list(p) + list(g) for p, g in zip(rows["prompt_ids"], rows["gen_ids"])]
    if len({len(s) for s in seqs}) != 1:
        raise IPGError("the benchmark's trajectories must all have the same length")
    ids = torch.tensor(seqs)
    r = torch.tensor(rows["reward_accuracy"].to_numpy(), dtype=torch.float64)
    g = len(r)
    adv = r - (r.sum() - r) / (g - 1)  # leave-one-out
    p = len(rows["prompt_ids"].iloc[0])
    return DenseBatch(ids, torch.ones_like(ids), ids[:, p:], adv / g, p)


def generated_logprobs(model: nn.Module, batch: DenseBatch, **inputs: Tensor) -> Tensor:
    """log pi(a_t | s_t) [rows, T] of the sampled tokens (logits of the generated positions only)."""
    t = batch.gen_len
    mask = batch.mask.repeat(_rows(inputs) // batch.mask.shape[0], 1)
    hidden = model.get_decoder()(attention_mask=mask, **inputs).last_hidden_state[:, -(t + 1):-1]
    # the LM head on a 2-D [rows * T, d] input: one matmul (a strided 3-D slice, as HF's
    # logits_to_keep gives, runs a batched matmul ~1.5-3x slower on a CPU)
    logits = model.get_output_embeddings()(hidden.reshape(-1, hidden.shape[-1]))
    logits = logits.view(*hidden.shape[:2], -1)  # [rows, T, vocab]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logp = torch.log_softmax(logits / TEMPERATURE, dim=-1)
    targets = batch.targets.repeat(logp.shape[0] // batch.targets.shape[0], 1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _rows(inputs: dict[str, Tensor]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def ipg_run(model: nn.Module, table, m: int, chunk: int = 1, granularity: str = "neurons",
            **config) -> Callable[[], object]:
    """A callable attributing `table` with IPG (m path points, `chunk` per batch, temperature
    1, no residual bound; `config`: other IPGConfig keys), for timing side by side."""
    from ipg.attribution.ipg import IPGConfig, attribute

    cfg = IPGConfig(m=m, chunk=chunk, temperature=1.0, max_residual=None, **config)
    return lambda: attribute(model, table, granularity, cfg, progress=False)


def plain_passes(model: nn.Module, batch: DenseBatch, m: int) -> None:
    """m x (teacher-forced forward, log-prob of the sampled tokens, backward to an embedding leaf)."""
    embed = model.get_input_embeddings()
    for _ in range(m):
        leaf = embed(batch.ids).detach().requires_grad_(True)
        lp = generated_logprobs(model, batch, inputs_embeds=leaf)
        (batch.coef.to(lp.dtype) * lp.sum(1)).sum().backward()


def interleaved(fns: dict[str, Callable[[], object]], reps: int,
                warmup: bool = True) -> dict[str, float]:
    """Median seconds of each callable over `reps` rounds run in the order A, B, A, B, ..."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}
