"""Test helpers: tiny random Qwen2 / Llama models, a stand-in TopK SAE, sampled trajectories.

Imported by tests/attribution/* and tests/test_components.py (not a conftest, so both can).
"""
from __future__ import annotations

import types

import pandas as pd
import torch
from torch import Tensor, nn
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

EOS = 1


def tiny_model(arch: str = "qwen2", vocab: int = 20, seed: int = 0, init: float = 0.2,
               dtype: torch.dtype = torch.float64, layers: int = 2, attn: str = "sdpa") -> nn.Module:
    """2 layers, hidden 32, 4 heads / 2 kv heads, intermediate 64.

    float64 throughout: sdpa attention by default (eager computes its softmax in float32) and
    RMSNorm patched to keep the dtype; otherwise ~1e-7 relative noise would hide quadrature
    errors below that.

    A large init (0.2 instead of 0.02) makes the model clearly non-linear along the path,
    so the quadrature error is visible and must shrink with m.
    """
    torch.manual_seed(seed)
    kw = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
              initializer_range=init, attn_implementation=attn, eos_token_id=EOS,
              tie_word_embeddings=False)
    config_cls, model_cls = {"qwen2": (Qwen2Config, Qwen2ForCausalLM),
                             "llama": (LlamaConfig, LlamaForCausalLM)}[arch]
    model = model_cls(config_cls(**kw)).to(dtype).eval()
    for module in model.modules():  # HF RMSNorm computes in float32 even in a float64 model
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(_rmsnorm_same_dtype, module)
    return model


def _rmsnorm_same_dtype(self: nn.Module, x: Tensor) -> Tensor:
    """The same RMSNorm, computed in the input's dtype (float64 stays float64)."""
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


class ToySAE(nn.Module):
    """Stand-in TopK SAE with the interface of ipg.sae.TopKSAE (encode / decode / W_dec / layer)."""

    def __init__(self, d_in: int, n_latents: int, k: int, layer: int, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_enc = nn.Parameter(torch.randn(n_latents, d_in, generator=g, dtype=dtype) / d_in**0.5)
        self.b_enc = nn.Parameter(torch.full((n_latents,), 0.1, dtype=dtype))
        self.W_dec = nn.Parameter(torch.randn(n_latents, d_in, generator=g, dtype=dtype) / n_latents**0.5)
        self.b_dec = nn.Parameter(torch.randn(d_in, generator=g, dtype=dtype) * 0.1)
        self.k, self.layer = k, layer

    def encode(self, x: Tensor) -> Tensor:
        pre = torch.relu((x.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc.T + self.b_enc)
        vals, idx = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, vals)

    def decode(self, f: Tensor) -> Tensor:
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec


@torch.no_grad()
def sample_table(model: nn.Module, n_prompts: int = 3, G: int = 4, max_new: int = 6,
                 temperature: float = 1.0, seed: int = 0, prompt_len: int = 4) -> pd.DataFrame:
    """Ancestral sampling without a cache (independent of the code under test)."""
    gen = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    rows = []
    for p in range(n_prompts):
        prompt = torch.randint(2, vocab, (prompt_len,), generator=gen).tolist()
        for j in range(G):
            ids, lp = list(prompt), 0.0
            for _ in range(max_new):
                logits = model(torch.tensor([ids])).logits[0, -1].double() / temperature
                logp = torch.log_softmax(logits, -1)
                tok = int(torch.multinomial(logp.exp(), 1, generator=gen))
                ids.append(tok)
                lp += float(logp[tok])
                if tok == EOS:
                    break
            g_ids = ids[len(prompt):]
            rows.append(dict(
                prompt_id=f"p{p}", sample_id=j, prompt_ids=prompt, gen_ids=g_ids,
                reward_accuracy=float(sum(t % 3 == 0 for t in g_ids) % 2),
                reward_length=float(len(g_ids)), logprob=lp,
                truncated=g_ids[-1] != EOS, temperature=temperature))
    return pd.DataFrame(rows)


# -- the sampler's stand-ins (tests/test_sampling.py, tests/test_checkpoint.py) ------------------

class CharTokenizer:
    """A stand-in tokenizer: one token per character, ids 3..; 0 = pad, 1 = eos."""

    pad_token_id, eos_token_id = 0, 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + (ord(c) % 13) for c in text]}


def tiny_sampler_model(seed: int = 0, vocab: int = 16) -> nn.Module:
    """A float32 random Qwen2 (2 layers, hidden 32) with eos 1 / pad 0, as the sampler expects."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      eos_token_id=1, pad_token_id=0)
    model = Qwen2ForCausalLM(cfg).eval()
    model.generation_config.eos_token_id = 1
    return model.requires_grad_(False)


# -- interruption (tests/test_checkpoint.py, tests/attribution/test_resume.py) ------------------

class Killed(Exception):
    """Stands for SIGKILL: raised from a chunk store's after_save once chunk `at` is on disk."""


def kill_after(at: str):
    def callback(name: str) -> None:
        if name == at:
            raise Killed(name)
    return callback
