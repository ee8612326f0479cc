"""Control (Eq. 4 of docs/method.md): scale a set of units by gamma during any forward.

    steer(model, units, gamma)               h_i <- gamma h_i              (mode "scale", Eq. 4)
    steer(model, units, gamma, mode="mean",  h_i <- m_i + gamma (h_i - m_i) (gamma = 0: mean-
          means=m)                                                          ablation)

for every unit i in `units`, at every position, in every forward while the context is open
(prompt encoding and every generated token, since the sampler calls the model's forward).
gamma > 1 enhances, 0 <= gamma < 1 suppresses, gamma = 0 ablates (to zero, or to the
dataset mean m in mode "mean"). For SAE latents the edit keeps the SAE's reconstruction
error: x <- x + W_dec[P]^T (f'_P - f_P) (ipg.core.units.SAELatents.write). For layers, h is
what block l adds to the residual stream: out <- in + gamma (out - in) (gamma = 0 skips the
block; mode "mean": out <- in + m + gamma (out - in - m)).

The hook plumbing is ipg.core.units (scale_units, edit_activations); this module adds the
input checks, the mean mode, dataset means of units (`activation_means` over given inputs,
`trajectory_means` over a trajectory table: the study's m, every real position of the
model's attribution trajectories) and the check that a unit set selected on one model fits
another (`check_transfer`).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Sequence

from ipg.core.units import Granularity, edit_activations, get_granularity, parse_unit, scale_units
from ipg.errors import IPGError

if TYPE_CHECKING:
    from torch import Tensor, nn

MODES = ("scale", "mean")


def group_units(
    model: nn.Module, units: Sequence[str], sae: Any = None
) -> tuple[Granularity, dict[int, list[int]]]:
    """Validate unit ids against a model -> (granularity, {layer: [unit index, ...]})."""
    if isinstance(units, str):
        raise IPGError(f"units must be a list of unit ids, got the string {units!r}")
    parsed = [parse_unit(str(u)) for u in units]
    names = sorted({p[0] for p in parsed})
    if len(names) != 1:
        raise IPGError(f"units mix granularities {names}; steer one granularity at a time")
    gran = get_granularity(names[0], model, sae)
    available = gran.available_layers()
    by_layer: dict[int, list[int]] = {}
    for unit, (_, layer, index) in zip(units, parsed):
        if layer not in available:
            raise IPGError(f"unit '{unit}': layer {layer} not in this model's layers {available}"
                           + (" (no SAE for it)" if names[0] == "sae" else ""))
        n_units = gran.unit_shape(layer)[0]
        if index >= n_units:
            raise IPGError(f"unit '{unit}': index {index} >= {n_units} units in layer {layer}")
        by_layer.setdefault(layer, []).append(index)
    return gran, by_layer


# Above this a scaled activation leaves the range where float16/bfloat16 (max ~6.5e4) and the
# next layer's norm stay meaningful: gamma = 1e30 gave all-zero logits, 1e300 a raw overflow.
GAMMA_MAX = 1e3


def check_gamma(gamma: float) -> float:
    """gamma as a float in [0, GAMMA_MAX], else an IPGError naming the allowed range."""
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise IPGError(f"gamma must be a number >= 0, got {gamma!r}") from None
    if not math.isfinite(gamma) or gamma < 0 or gamma > GAMMA_MAX:
        raise IPGError(f"gamma must be a finite number in [0, {GAMMA_MAX:g}] (0 ablates, < 1 "
                       f"suppresses, > 1 enhances), got {gamma}")
    return gamma


@contextmanager
def steer(
    model: nn.Module,
    units: Sequence[str],
    gamma: float,
    sae: Any = None,
    mode: Literal["scale", "mean"] = "scale",
    means: Mapping[str, Any] | Sequence[Any] | None = None,
) -> Iterator[None]:
    """Eq. 4 while the block runs: the selected units scaled by gamma (about 0, or about their
    mean in mode "mean"; `means`: unit -> mean (a number, or [unit_dim] for heads / layers),
    or a sequence aligned with `units`). Hooks are removed on exit, also on an exception."""
    gamma = check_gamma(gamma)
    if mode not in MODES:
        raise IPGError(f"unknown steering mode '{mode}'; allowed: {', '.join(MODES)}")
    if isinstance(units, str):
        raise IPGError(f"units must be a list of unit ids, got the string {units!r}")
    units = list(units)
    if not units:
        yield
        return
    gran, by_layer = group_units(model, units, sae)
    if mode == "scale":
        with scale_units(model, units, gamma, sae):
            yield
        return
    fns = _mean_fns(gran, by_layer, units, gamma, means)
    with edit_activations(gran, fns):
        yield


def _mean_fns(gran: Granularity, by_layer: dict[int, list[int]], units: list[str], gamma: float,
              means: Mapping[str, Any] | Sequence[Any] | None) -> dict:
    """Per-layer edits a[..., idx, :] <- m + gamma (a[..., idx, :] - m)."""
    import torch

    if means is None:
        raise IPGError("mode 'mean' needs means= (unit -> dataset mean); compute them with "
                       "ipg.core.intervention.activation_means")
    if not isinstance(means, Mapping):
        means = list(means)
        if len(means) != len(units):
            raise IPGError(f"means has {len(means)} entries for {len(units)} units; pass one per unit")
        means = dict(zip(units, means))
    missing = [u for u in units if u not in means]
    if missing:
        raise IPGError(f"means lacks unit(s) {missing[:3]}{' ...' if len(missing) > 3 else ''}")
    fns = {}
    for layer, ix in by_layer.items():
        dim = gran.unit_shape(layer)[1]
        ids = [gran.unit_id(layer, i) for i in ix]
        mu = torch.stack([torch.as_tensor(means[u], dtype=torch.float64).reshape(-1).expand(dim)
                          for u in ids])  # [k, unit_dim]
        idx = torch.tensor(ix)

        def fn(x: Tensor, layer: int = layer, idx: Tensor = idx, mu: Tensor = mu) -> Tensor:
            a = gran.read(layer, x)  # [b, pos, units, unit_dim]
            m = mu.to(device=a.device, dtype=a.dtype)
            a_new = a.clone()
            i = idx.to(a.device)
            a_new[..., i, :] = m + gamma * (a[..., i, :] - m)
            return gran.write(layer, x, a_new, a)

        fns[layer] = fn
    return fns


def activation_means(
    model: nn.Module,
    input_ids: Tensor,
    units: Sequence[str],
    attention_mask: Tensor | None = None,
    sae: Any = None,
) -> dict[str, Tensor]:
    """Dataset means of units over the non-padding positions of input_ids [b, T]:
    unit -> [unit_dim] float64 (the m of mode "mean")."""
    import torch

    gran, by_layer = group_units(model, list(units), sae)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    sums: dict[int, Tensor] = {}

    def collect(layer: int, ix: list[int]):
        def fn(x: Tensor) -> None:
            a = gran.read(layer, x)[..., ix, :].double()  # [b, T, k, unit_dim]
            w = mask.to(a.device, torch.float64)[..., None, None]
            sums[layer] = (a * w).sum((0, 1))  # [k, unit_dim]
        return fn

    with edit_activations(gran, {l: collect(l, ix) for l, ix in by_layer.items()}), \
            torch.no_grad():
        model(input_ids=input_ids, attention_mask=mask)
    n = float(mask.sum())
    return {gran.unit_id(l, i): sums[l][j] / n for l, ix in by_layer.items() for j, i in enumerate(ix)}


def trajectory_means(
    model: nn.Module,
    trajectories: Any,
    granularity: str,
    sae: Any = None,
    layers: Sequence[int] | None = None,
    pad_id: int = 0,
) -> dict[str, Tensor]:
    """The m of mode "mean" for every unit of a granularity: its mean activation over every
    real position (prompt and generated tokens, padding excluded) of every trajectory of a
    trajectory table (the model's attribution trajectories), read through the granularity
    as the attribution methods read it (ipg.core.units; the same mean as IPG's baseline
    'mean' with positions 'all'). One unmodified forward per prompt (its G samples as one
    batch); unit -> [unit_dim] float64."""
    from ipg.attribution.reference import activation_stats
    from ipg.attribution.surrogate import build_batch

    for key in ("prompt_id", "prompt_ids", "gen_ids"):
        if key not in trajectories.columns:
            raise IPGError(f"trajectory table has no column '{key}' (produced by the trajectory stage)")
    if len(trajectories) == 0:
        raise IPGError("trajectory table is empty: no activations to average for mean ablation")
    gran = get_granularity(granularity, model, sae)
    layers = gran.select_layers(layers)
    device = next(model.parameters()).device
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model

    def forwards():
        for _, rows in trajectories.groupby("prompt_id", sort=False):
            batch = build_batch(list(rows["prompt_ids"].iloc[0]), list(rows["gen_ids"]), device,
                                pad_id)
            run = (lambda b=batch: base(input_ids=b.input_ids, attention_mask=b.attention_mask,
                                        use_cache=False))
            yield run, batch.attention_mask.bool()

    stats = activation_stats(gran, layers, forwards())
    return {gran.unit_id(l, i): stats[l][0][i].cpu() for l in layers
            for i in range(gran.unit_shape(l)[0])}


def check_transfer(units: Sequence[str], source: nn.Module, target: nn.Module,
                   sae_source: Any = None, sae_target: Any = None) -> None:
    """One-line IPGError unless `units` (selected on `source`) fit `target`: same architecture,
    same layer count, and the same (n_units, unit_dim) in every layer the units use."""
    src_type = getattr(source.config, "model_type", None)
    tgt_type = getattr(target.config, "model_type", None)
    if src_type != tgt_type:
        raise IPGError(f"cannot transfer units from a '{src_type}' model to a '{tgt_type}' model; "
                       "transfer needs the same architecture")
    if not units:
        return
    g_src, by_layer = group_units(source, units, sae_source)
    g_tgt = get_granularity(g_src.name, target, sae_target)
    n_src, n_tgt = len(g_src.blocks), len(g_tgt.blocks)
    if n_src != n_tgt:
        raise IPGError(f"cannot transfer units: source has {n_src} layers, target {n_tgt}")
    for layer in by_layer:
        if layer not in g_tgt.available_layers():
            raise IPGError(f"cannot transfer units: target has no {g_src.name} layer {layer}")
        s, t = g_src.unit_shape(layer), g_tgt.unit_shape(layer)
        if s != t:
            raise IPGError(f"cannot transfer units: layer {layer} {g_src.name} shape (units, dim) "
                           f"is {s} on the source and {t} on the target")
