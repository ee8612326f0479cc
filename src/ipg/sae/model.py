"""The TopK sparse autoencoder the study puts on one layer's residual stream.

`TopKSAE` wraps EleutherAI's `sparsify.SparseCoder` (its parameters, init and file format;
Gao et al. 2024, "Scaling and evaluating sparse autoencoders"):

    f(x)     = TopK_k( ReLU( W_enc (x - b_dec) + b_enc ) )       [..., n_latents], dense
    x_hat(f) = f W_dec + b_dec                                    [..., d_in]

`encode` returns DENSE latents (zeros except the top-k per token) computed with plain
autograd ops, so its gradient w.r.t. x is exact (ReLU included); sparsify's fused encoder,
used for training, passes gradient through selected latents even where ReLU clipped them.
SAE latents are the `sae.L{layer}.f{i}` units: f[..., i] of the SAE on decoder layer `layer`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from sparsify import SparseCoder, SparseCoderConfig
from torch import Tensor, nn

from ipg.errors import IPGError


class TopKSAE(nn.Module):
    """TopK SAE reading the output residual stream of decoder layer `layer`."""

    def __init__(
        self,
        coder: SparseCoder,
        layer: int,
        *,
        path: Path | None = None,
        metrics: dict | None = None,
    ) -> None:
        super().__init__()
        cfg = coder.cfg
        if cfg.activation != "topk" or cfg.transcode or cfg.skip_connection:
            raise IPGError(
                f"SAE {path or '(in memory)'} is activation={cfg.activation}, "
                f"transcode={cfg.transcode}, skip_connection={cfg.skip_connection}: "
                "only plain TopK autoencoders (topk, no transcode, no skip) are supported"
            )
        if coder.W_dec is None:
            raise IPGError(f"SAE {path or '(in memory)'} has no decoder; load it with decoder=True")
        self.coder = coder
        self.layer = int(layer)
        self.path = path  # folder it was loaded from / saved to, for error messages
        self.metrics: dict = dict(metrics or {})

    @classmethod
    def new(cls, d_in: int, n_latents: int, k: int, layer: int) -> "TopKSAE":
        """A freshly initialised SAE (float32; seeds come from torch's global RNG)."""
        if not 1 <= k <= n_latents:
            raise IPGError(f"SAE k={k} must be between 1 and n_latents={n_latents}")
        cfg = SparseCoderConfig(activation="topk", num_latents=n_latents, k=k)
        return cls(SparseCoder(d_in, cfg, dtype=torch.float32), layer)

    # -- sizes ------------------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return int(self.coder.d_in)

    @property
    def n_latents(self) -> int:
        return int(self.coder.num_latents)

    @property
    def k(self) -> int:
        return int(self.coder.cfg.k)

    @property
    def W_dec(self) -> Tensor:  # [n_latents, d_in], rows ~unit norm (renormalised each step)
        return self.coder.W_dec  # type: ignore[return-value]

    @property
    def b_dec(self) -> Tensor:  # [d_in]
        return self.coder.b_dec

    @property
    def W_enc(self) -> Tensor:  # [n_latents, d_in]
        return self.coder.encoder.weight

    @property
    def b_enc(self) -> Tensor:  # [n_latents]
        return self.coder.encoder.bias

    @property
    def dtype(self) -> torch.dtype:
        return self.coder.dtype

    # -- maps -------------------------------------------------------------------------------
    def _check_width(self, t: Tensor, width: int, what: str) -> None:
        if t.shape[-1] != width:
            raise IPGError(
                f"SAE for layer {self.layer} got {what} of width {t.shape[-1]}, expected "
                f"{width}: pass the residual stream of a model with hidden size {self.d_in}"
            )

    def pre_acts(self, x: Tensor) -> Tensor:
        """ReLU(W_enc (x - b_dec) + b_enc): [..., d_in] -> [..., n_latents], before TopK."""
        self._check_width(x, self.d_in, "input")
        x = x.to(self.dtype)
        return torch.relu(nn.functional.linear(x - self.b_dec, self.W_enc, self.b_enc))

    def encode(self, x: Tensor) -> Tensor:
        """Dense latents [..., n_latents]: the top-k pre-activations per token, zeros elsewhere.

        Differentiable w.r.t. x (exactly: TopK selects, ReLU and the linear map carry gradient).
        Computed in the SAE's dtype.
        """
        pre = self.pre_acts(x)  # [..., n_latents]
        top_vals, top_idx = pre.topk(self.k, dim=-1, sorted=False)  # [..., k]
        return torch.zeros_like(pre).scatter(-1, top_idx, top_vals)

    def decode(self, f: Tensor) -> Tensor:
        """x_hat = f W_dec + b_dec: [..., n_latents] -> [..., d_in] (decoder bias included)."""
        self._check_width(f, self.n_latents, "latents")
        return f.to(self.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction x_hat [..., d_in], in the dtype of x."""
        return self.decode(self.encode(x)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"layer={self.layer}, d_in={self.d_in}, n_latents={self.n_latents}, k={self.k}"
