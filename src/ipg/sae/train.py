"""Train a TopK SAE on cached residual-stream activations; report held-out FVU and dead latents.

Why not `sparsify.Trainer` (it does run on this CPU): it takes a model plus a token dataset
and streams ONE pass, running the whole model (all layers and the LM head) on every step.
The study collects a layer's activations once (`collect_residual`, pad positions dropped by
the attention mask; Trainer can only drop a token id, and Qwen's pad id is also its EOS) and
trains several epochs on them with a held-out split; Trainer has no epochs over cached
activations and no held-out evaluation, and it writes pickled optimizer checkpoints. So this
module keeps sparsify's SparseCoder (its FVU + AuxK losses, unit-norm decoder, b_dec = data
mean init, and its default optimizer: sign-SGD in a schedule-free wrapper with its lr rule
5e-3 / sqrt(n_latents / 2^14)) and only replaces the outer loop with the one below.

Sign-SGD steps are absolute (lr per weight per step), so its lr rule presumes inputs of
LLM scale; a random model's residuals are ~50x smaller. As in SAELens, training sees
c * x with c = sqrt(d_in) / mean ||x|| (so mean ||c x|| = sqrt(d_in)), and the scale is then
folded back exactly (b_enc, b_dec /= c; W_enc, W_dec unchanged): f(x) = f_c(c x) / c.

    FVU = sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - mean(x)||^2      (held-out tokens t)
"""

from __future__ import annotations

import math
import time

import torch
from schedulefree import ScheduleFreeWrapper
from sparsify.sign_sgd import SignSGD
from torch import Tensor

from ipg.errors import IPGError
from ipg.sae.model import TopKSAE

HOLDOUT_FRACTION = 0.1  # share of tokens held out for FVU / dead-latent metrics


def default_lr(n_latents: int) -> float:
    """sparsify's sign-SGD learning-rate rule (wider SAEs take smaller steps)."""
    return 5e-3 / math.sqrt(n_latents / 2**14)


def _check_args(acts: Tensor, n_latents: int, k: int, batch_size: int, epochs: int) -> None:
    if not isinstance(acts, Tensor) or acts.ndim != 2 or not acts.is_floating_point():
        shape = tuple(acts.shape) if isinstance(acts, Tensor) else type(acts).__name__
        raise IPGError(f"train_sae needs float acts of shape [n_tokens, d_in], got {shape}")
    if acts.shape[0] < 20:
        raise IPGError(f"train_sae got {acts.shape[0]} tokens; collect at least 20 (10% held out)")
    if not 1 <= k <= n_latents:
        raise IPGError(f"train_sae k={k} must be between 1 and n_latents={n_latents}")
    if batch_size < 1 or epochs < 1:
        raise IPGError(f"train_sae batch_size={batch_size}, epochs={epochs}: both must be >= 1")
    if not torch.isfinite(acts).all():
        raise IPGError("train_sae acts contain NaN/inf; check the model run that produced them")


@torch.no_grad()
def evaluate_sae(sae: TopKSAE, acts: Tensor, chunk: int = 8192) -> dict[str, float]:
    """FVU and dead fraction (latents never in any token's top-k) of `sae` on acts [n, d_in]."""
    x_all = acts.to(sae.dtype)
    mean = x_all.mean(0)  # [d_in]
    err, var = 0.0, 0.0
    fired = torch.zeros(sae.n_latents, dtype=torch.bool)
    for x in x_all.split(chunk):
        top_acts, top_idx, _ = sae.coder.encode(x)  # [n, k] each
        x_hat = sae.coder.decode(top_acts, top_idx)  # [n, d_in]
        err += float((x - x_hat).pow(2).sum())
        var += float((x - mean).pow(2).sum())
        fired[top_idx[top_acts > 0]] = True
    return {"fvu": err / max(var, 1e-30), "dead_fraction": 1.0 - float(fired.float().mean())}


def train_sae(
    acts: Tensor,
    layer: int,
    n_latents: int,
    k: int,
    *,
    epochs: int = 10,
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int = 1024,
    seed: int = 0,
    auxk_alpha: float = 1 / 32,
    dead_after_tokens: int | None = None,
) -> tuple[TopKSAE, dict]:
    """Train a TopK SAE on acts [n_tokens, d_in] (the output of decoder layer `layer`).

    `steps` (optimizer steps) overrides `epochs` when given. `lr` defaults to sparsify's rule.
    AuxK (weight `auxk_alpha`) revives latents that have not fired for `dead_after_tokens`
    training tokens (default: half an epoch). Deterministic for a given seed; does not touch
    torch's global RNG. Returns (sae, metrics) with fvu and dead_fraction on the held-out 10%,
    train_seconds, n_tokens and the settings used.
    """
    _check_args(acts, n_latents, k, batch_size, epochs)
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    acts = acts.detach().to("cpu", torch.float32)
    n_tokens, d_in = acts.shape
    perm = torch.randperm(n_tokens, generator=gen)
    n_eval = max(1, round(HOLDOUT_FRACTION * n_tokens))
    x_eval, x_train = acts[perm[:n_eval]], acts[perm[n_eval:]]  # [n_eval|n_train, d_in]
    n_train = x_train.shape[0]
    scale = math.sqrt(d_in) / float(x_train.norm(dim=1).mean().clamp_min(1e-12))
    x_train = x_train * scale  # mean token norm sqrt(d_in) while training
    batch_size = min(batch_size, n_train)
    per_epoch = max(1, n_train // batch_size)
    total_steps = steps if steps is not None else epochs * per_epoch
    lr = lr if lr is not None else default_lr(n_latents)
    dead_after = dead_after_tokens if dead_after_tokens is not None else max(1, n_train // 2)

    # 1. init (sparsify's): encoder from torch's RNG, W_dec = unit-norm W_enc, b_dec = mean
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sae = TopKSAE.new(d_in, n_latents, k, layer)
    coder = sae.coder
    coder.b_dec.data = x_train.mean(0)
    opt = ScheduleFreeWrapper(SignSGD([{"params": coder.parameters(), "lr": lr}]), momentum=0.95)
    opt.train()
    since_fired = torch.zeros(n_latents, dtype=torch.long)  # training tokens since last fired

    train_fvu = float("nan")
    order = torch.randperm(n_train, generator=gen)
    for step in range(total_steps):
        # 2. next minibatch (reshuffled every epoch)
        b = step % per_epoch
        if b == 0 and step > 0:
            order = torch.randperm(n_train, generator=gen)
        x = x_train[order[b * batch_size : (b + 1) * batch_size]]  # [batch, d_in]
        # 3. FVU + AuxK loss on dead latents, gradient orthogonal to unit-norm decoder rows
        dead_mask = since_fired > dead_after if auxk_alpha > 0 else None
        out = coder(x, dead_mask=dead_mask)
        (out.fvu + auxk_alpha * out.auxk_loss).backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()
        coder.set_decoder_norm_to_unit_norm()
        # 4. dead-latent bookkeeping
        since_fired += x.shape[0]
        since_fired[out.latent_indices.flatten()] = 0
        train_fvu = float(out.fvu.detach())

    # 5. schedule-free: switch to the averaged weights (what sparsify saves), evaluate
    opt.eval()
    coder.requires_grad_(False)
    coder.b_dec.data /= scale  # 6. fold the input scale back: SAE of x, not of c * x
    coder.encoder.bias.data /= scale
    metrics = {
        **evaluate_sae(sae, x_eval),
        "train_fvu_last_batch": train_fvu,
        "train_seconds": time.perf_counter() - t0,
        "n_tokens": n_tokens,
        "n_train": n_train,
        "n_eval": n_eval,
        "steps": total_steps,
        "batch_size": batch_size,
        "lr": lr,
        "input_scale": scale,
        "layer": layer,
        "d_in": d_in,
        "n_latents": n_latents,
        "k": k,
        "seed": seed,
    }
    sae.metrics = metrics
    return sae, metrics
