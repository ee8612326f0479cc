"""The granularities: where a unit's activation h lives, its id, how to read, replace, scale it.

Every method (IPG, every baseline) and every intervention goes through this one module.
A granularity hooks one module per decoder layer (a forward pre-hook on its input, a
forward hook on its output, or an "update" hook: what the module adds to its input) and
views the hooked tensor x as unit activations a[batch, pos, units, unit_dim]; a unit's
score sums over its unit_dim.

    name     hooked tensor x                          a                          unit id
    neurons  input of mlp.down_proj = act(gate)*up    [b, pos, d_ff, 1]          L{l}.mlp.n{i}
    heads    input of self_attn.o_proj                [b, pos, n_heads, head_dim] L{l}.attn.h{h}
    layers   update of decoder block l: out - in      [b, pos, 1, d_model]       L{l}.resid
    sae      output of decoder block sae.layer        f = encode(x) [b, pos, n, 1] sae.L{l}.f{i}

A layer's unit is what its block (attention + MLP) adds to the residual stream, u = out - in;
an edit u -> u' makes the block's output in + u'. So a = 0 means "block skipped" (the
stream passes through unchanged), and scaling by gamma scales the block's contribution,
not the stream (which the following RMSNorm would cancel).

`write(x, a_new, a)` puts modified activations back. For neurons/heads/layers it is a
reshape of a_new; for SAE latents it keeps the reconstruction error,
x' = decode(a_new) + (x - decode(a)), so x' = x when a_new = a. This is what the path of
Eq. 2 (a' + alpha (a - a')) and the control of Eq. 4 (gamma a; for SAE latents
x + W_dec[P]^T (gamma - 1) f_P) both use. Adding a granularity is one small class registered
in GRANULARITIES. Importing this module does not import torch (config validation stays light).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal, Sequence

from ipg.errors import IPGError
from ipg.registry import Registry

if TYPE_CHECKING:  # torch is imported where used: validating names stays light (snakemake -n)
    import torch
    from torch import Tensor, nn

EditFn = Callable[["Tensor"], "Tensor | None"]  # hooked x -> replacement (None: unchanged)
OutputFn = Callable[["Tensor"], "Tensor"]  # producer's input -> module(layer)'s output


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a supported causal LM (ipg.models.architecture's table: Llama,
    Qwen2/3, Mistral, Gemma, Phi-3, GPT-2, GPT-NeoX)."""
    from torch import nn

    from ipg.models.architecture import architecture, submodule

    layers = submodule(model, architecture(model).blocks)
    if not isinstance(layers, nn.ModuleList):
        raise IPGError(f"{type(model).__name__}.{architecture(model).blocks} is not a ModuleList of "
                       "decoder blocks")
    return layers


def _part(gran: "Granularity", layer: int, which: str) -> nn.Module:
    """Block `layer`'s submodule named by the architecture table field `which`."""
    from ipg.models.architecture import architecture, submodule

    return submodule(gran.blocks[layer], getattr(architecture(gran.model), which))


def _width(module: nn.Module) -> int:
    from ipg.models.architecture import in_features

    return in_features(module)


class Granularity:
    """One kind of unit. Subclasses set name/hook and implement module, shape, read, write."""

    name: ClassVar[str]
    hook: ClassVar[Literal["pre", "post", "update"]]

    def __init__(self, model: nn.Module, sae: Any = None) -> None:
        self.model = model
        self.blocks = decoder_layers(model)

    # -- where ------------------------------------------------------------------------------
    def available_layers(self) -> list[int]:
        return list(range(len(self.blocks)))

    def module(self, layer: int) -> nn.Module:
        raise NotImplementedError

    def unit_shape(self, layer: int) -> tuple[int, int]:
        """(n_units, unit_dim) of one layer."""
        raise NotImplementedError

    def unit_id(self, layer: int, index: int) -> str:
        raise NotImplementedError

    def bypass(self, layer: int, output: OutputFn | None = None
               ) -> list[tuple[nn.Module, Callable[..., Any]]]:
        """[(producer, forward)]: modules that compute the hooked tensor x only to hand it on
        to module(layer), each with a forward that skips that work (x is then a placeholder
        of its shape). Used when every edit replaces x without reading its values (IPG's
        joint path). []: nothing to skip.

        output: for a "pre" granularity whose producer returns module(layer)(x) and nothing
        else, output(producer_input) -> that module's output; the forward then returns it,
        so module(layer) is skipped as well (IPG's joint path through a linear consumer,
        attribution/path.py)."""
        return []

    # -- read / write -------------------------------------------------------------------------
    def read(self, layer: int, x: Tensor) -> Tensor:
        """Hooked tensor x [b, pos, ...] -> unit activations a [b, pos, units, unit_dim]."""
        raise NotImplementedError

    def write(self, layer: int, x: Tensor, a_new: Tensor, a: Tensor) -> Tensor:
        """x with its activations a (= read(x)) replaced by a_new; same shape/dtype as x."""
        return a_new.reshape(x.shape).to(x.dtype)

    # -- derived --------------------------------------------------------------------------------
    def select_layers(self, layers: Sequence[int] | None) -> list[int]:
        """The configured subset (None: all), validated and sorted."""
        available = self.available_layers()
        if layers is None:
            return available
        chosen = sorted({int(l) for l in layers})
        bad = [l for l in chosen if l not in available]
        if bad or not chosen:
            raise IPGError(
                f"config key 'layers': {bad or 'empty list'} not available for granularity "
                f"'{self.name}'; choose from {available}"
            )
        return chosen

    def unit_ids(self, layers: Sequence[int]) -> list[str]:
        return [self.unit_id(l, i) for l in layers for i in range(self.unit_shape(l)[0])]

    def scale(self, layer: int, x: Tensor, index: Tensor, gamma: float,
              cache: dict | None = None) -> Tensor:
        """Eq. 4: units `index` (long [k]) of this layer multiplied by gamma, at every position.

        `cache` keeps the [units, 1] factor between forwards (generation calls this once per
        token), so steering costs one multiply per layer and step."""
        import torch

        a = self.read(layer, x)
        key = (a.dtype, a.device)
        factor = cache.get(key) if cache is not None else None
        if factor is None:
            factor = torch.ones(a.shape[-2], 1, dtype=a.dtype, device=a.device)  # [units, 1]
            factor[index.to(a.device)] = gamma
            if cache is not None:
                cache[key] = factor
        return self.write(layer, x, a * factor, a)


GRANULARITIES: Registry[type[Granularity]] = Registry("granularity")


@GRANULARITIES.register("neurons")
class Neurons(Granularity):
    """MLP neurons: the input of mlp.down_proj (for SwiGLU act(gate) * up), [b, pos, d_ff]."""

    name, hook = "neurons", "pre"

    def module(self, layer: int) -> nn.Module:
        return _part(self, layer, "down_proj")

    def unit_shape(self, layer: int) -> tuple[int, int]:
        return _width(self.module(layer)), 1

    def unit_id(self, layer: int, index: int) -> str:
        return f"L{layer}.mlp.n{index}"

    def read(self, layer: int, x: Tensor) -> Tensor:
        return x.unsqueeze(-1)  # [b, pos, d_ff, 1]

    def bypass(self, layer: int, output: OutputFn | None = None):
        """A SwiGLU MLP, down_proj(act(gate_proj(x)) * up_proj(x)), as down_proj(placeholder):
        gate_proj, up_proj and the activation (2/3 of the MLP's FLOPs) are skipped."""
        mlp, down = _part(self, layer, "mlp"), self.module(layer)
        if not all(hasattr(mlp, name) for name in ("gate_proj", "up_proj", "act_fn")):
            return []  # another MLP layout: it may do more than feed down_proj

        def forward(x: Tensor) -> Tensor:
            return output(x) if output is not None else down(placeholder(x, _width(down)))

        return [(mlp, forward)]


@GRANULARITIES.register("heads")
class Heads(Granularity):
    """Attention heads: the per-head output before self_attn.o_proj, [b, pos, n_heads, head_dim]."""

    name, hook = "heads", "pre"

    def module(self, layer: int) -> nn.Module:
        return _part(self, layer, "o_proj")

    def unit_shape(self, layer: int) -> tuple[int, int]:
        n_heads = int(self.model.config.num_attention_heads)
        return n_heads, _width(self.module(layer)) // n_heads

    def unit_id(self, layer: int, index: int) -> str:
        return f"L{layer}.attn.h{index}"

    def read(self, layer: int, x: Tensor) -> Tensor:
        return x.unflatten(-1, self.unit_shape(layer))  # [b, pos, n_heads, head_dim]

    def bypass(self, layer: int, output: OutputFn | None = None):
        """Self-attention as o_proj(placeholder): q/k/v, rotary, cache and attention skipped
        (the cache the engine gives a path forward is stateless, surrogate.py)."""
        attn, o_proj = _part(self, layer, "attn"), self.module(layer)
        width = _width(o_proj)

        def forward(hidden_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, None]:
            if output is not None:
                return output(hidden_states), None
            return o_proj(placeholder(hidden_states, width)), None

        return [(attn, forward)]


@GRANULARITIES.register("layers")
class Layers(Granularity):
    """Whole layers: the update u = out - in that decoder block l adds to the residual stream
    (its attention + MLP output), one unit of width d_model. u = 0: the block is skipped."""

    name, hook = "layers", "update"

    def module(self, layer: int) -> nn.Module:
        return self.blocks[layer]

    def unit_shape(self, layer: int) -> tuple[int, int]:
        return 1, int(self.model.config.hidden_size)

    def unit_id(self, layer: int, index: int) -> str:
        return f"L{layer}.resid"

    def read(self, layer: int, x: Tensor) -> Tensor:
        return x.unsqueeze(-2)  # [b, pos, 1, d_model]

    def bypass(self, layer: int, output: OutputFn | None = None):
        """Block `layer` as an identity: its update is replaced (its output is in + u_path),
        so attention and MLP need not run; the blocks before it still run (they make its
        input). With every block replaced (joint), only embeddings, final norm and LM head run."""
        def identity(hidden_states: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            return hidden_states

        return [(self.blocks[layer], identity)]


@GRANULARITIES.register("sae")
class SAELatents(Granularity):
    """TopK-SAE latents on the output of decoder block sae.layer (one SAE per layer).

    `sae` is one SAE or a sequence of SAEs on different layers, each with .layer,
    .encode(x[..., d_in]) -> f[..., n_latents] (dense), .decode(f) -> x_hat, .W_dec [n_latents, d_in].
    """

    name, hook = "sae", "post"

    def __init__(self, model: nn.Module, sae: Any = None) -> None:
        super().__init__(model)
        if sae is None:
            raise IPGError("granularity 'sae' needs an SAE: pass sae=<trained SAE> (see ipg.sae)")
        saes = list(sae) if isinstance(sae, (list, tuple)) else [sae]
        self.saes = {int(s.layer): s for s in saes}
        if len(self.saes) != len(saes):
            raise IPGError("two SAEs were given for the same layer; pass one SAE per layer")
        bad = [l for l in self.saes if not 0 <= l < len(self.blocks)]
        if bad:
            raise IPGError(f"SAE layer {bad} outside the model's 0..{len(self.blocks) - 1}")

    def available_layers(self) -> list[int]:
        return sorted(self.saes)

    def module(self, layer: int) -> nn.Module:
        return self.blocks[layer]

    def unit_shape(self, layer: int) -> tuple[int, int]:
        return int(self.saes[layer].W_dec.shape[0]), 1

    def unit_id(self, layer: int, index: int) -> str:
        return f"sae.L{layer}.f{index}"

    def read(self, layer: int, x: Tensor) -> Tensor:
        return self.saes[layer].encode(x).to(x.dtype).unsqueeze(-1)  # [b, pos, n_latents, 1]

    def write(self, layer: int, x: Tensor, a_new: Tensor, a: Tensor) -> Tensor:
        sae = self.saes[layer]
        # decode(f_new) + (x - decode(f)): the reconstruction error is kept (the bias cancels)
        delta = sae.decode(a_new.squeeze(-1)) - sae.decode(a.squeeze(-1))  # [b, pos, d_in]
        return x + delta.to(x.dtype)


def get_granularity(name: str, model: nn.Module, sae: Any = None) -> Granularity:
    """The granularity `name` bound to a model (and SAEs for 'sae')."""
    return GRANULARITIES.get(name)(model, sae)


_UNIT_RE = [
    (re.compile(r"^L(\d+)\.mlp\.n(\d+)$"), "neurons"),
    (re.compile(r"^L(\d+)\.attn\.h(\d+)$"), "heads"),
    (re.compile(r"^L(\d+)\.resid$"), "layers"),
    (re.compile(r"^sae\.L(\d+)\.f(\d+)$"), "sae"),
]


def parse_unit(unit: str) -> tuple[str, int, int]:
    """'L3.mlp.n17' -> ('neurons', 3, 17); 'L2.resid' -> ('layers', 2, 0)."""
    for pattern, name in _UNIT_RE:
        match = pattern.match(unit)
        if match:
            groups = match.groups()
            return name, int(groups[0]), int(groups[1]) if len(groups) > 1 else 0
    raise IPGError(
        f"unit id '{unit}' is not one of L{{l}}.mlp.n{{i}}, L{{l}}.attn.h{{h}}, L{{l}}.resid, "
        "sae.L{l}.f{i}"
    )


def _replace_output(output: Any, fn: EditFn) -> Any:
    """Apply fn to a module output that is a tensor or a tuple whose first item is one."""
    from torch import Tensor

    if isinstance(output, Tensor):
        new = fn(output)
        return output if new is None else new
    new = fn(output[0])
    return output if new is None else (new, *output[1:])


def _first_input(args: tuple, kwargs: dict) -> Tensor:
    """A decoder block's input hidden state (positional, or the keyword hidden_states)."""
    return args[0] if args else kwargs["hidden_states"]


def _edit_update(inp: Tensor, out: Tensor, fn: EditFn) -> Tensor | None:
    """fn applied to the block's update u = out - inp [b, pos, d_model]; the new output is
    inp + fn(u), computed as out + (fn(u) - u) so that an unchanged u (gamma = 1, alpha = 1)
    gives the output bit for bit (None: the output is left as it is)."""
    u = out - inp
    new = fn(u)
    return None if new is None else out + (new.to(out.dtype) - u)


def computed_dtype(x: Tensor) -> "torch.dtype":
    """The dtype a matmul on x produces here: autocast's when it is on, else x's."""
    import torch

    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


def placeholder(x: Tensor, width: int) -> Tensor:
    """Zeros [*x.shape[:-1], width] (a broadcast view) in the dtype the skipped computation
    would have produced (computed_dtype)."""
    return x.new_zeros((), dtype=computed_dtype(x)).expand(*x.shape[:-1], width)


@contextmanager
def edit_activations(gran: Granularity, fns: dict[int, EditFn],
                     skip_producer: bool = False,
                     outputs: dict[int, OutputFn] | None = None) -> Iterator[None]:
    """Install `fns[layer](x) -> x' | None` on each layer's hooked tensor for the block's duration.

    skip_producer: the fns replace x without reading its values, so the module that computes
    x is bypassed where the granularity has one (Granularity.bypass; x is then a placeholder).
    outputs (with skip_producer, "pre" granularities): `outputs[layer](producer_input)` is
    module(layer)'s output, so where the producer can be bypassed, module(layer) is skipped
    too and fns[layer] is not installed; elsewhere fns[layer] is."""
    from ipg.models.architecture import architecture

    handles = []
    skip_producer = skip_producer and architecture(gran.model).bypass
    outputs = (outputs or {}) if skip_producer and gran.hook == "pre" else {}
    bypassed, hooked = [], dict(fns)
    for layer in fns if skip_producer else []:
        pairs = gran.bypass(layer, outputs.get(layer))
        if pairs and layer in outputs:
            del hooked[layer]  # its output is given: module(layer) does not run
        bypassed.extend(pairs)
    try:
        for layer, fn in hooked.items():
            module = gran.module(layer)
            if gran.hook == "pre":
                def pre(mod: nn.Module, args: tuple, fn: EditFn = fn) -> tuple | None:
                    new = fn(args[0])
                    return None if new is None else (new, *args[1:])

                handles.append(module.register_forward_pre_hook(pre))
            elif gran.hook == "update":
                def update(mod: nn.Module, args: tuple, kwargs: dict, out: Any,
                           fn: EditFn = fn) -> Any:
                    return _replace_output(out, lambda o: _edit_update(_first_input(args, kwargs),
                                                                       o, fn))

                handles.append(module.register_forward_hook(update, with_kwargs=True))
            else:
                def post(mod: nn.Module, args: tuple, out: Any, fn: EditFn = fn) -> Any:
                    return _replace_output(out, fn)

                handles.append(module.register_forward_hook(post))
        with replaced_forwards(bypassed):
            yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def replaced_forwards(pairs: Sequence[tuple[nn.Module, Callable[..., Any]]]) -> Iterator[None]:
    """Within the block, each module's forward is the paired callable (a module listed twice
    keeps its first); afterwards every module's own forward is back (instance-level ones too)."""
    swapped: list[tuple[Any, Any]] = []  # (module, its instance-level forward or None)
    try:
        for module, forward in pairs:
            if any(module is done for done, _ in swapped):
                continue  # listed twice: its first replacement stands
            swapped.append((module, module.__dict__.get("forward")))
            module.forward = forward
        yield
    finally:
        for module, own in reversed(swapped):
            if own is None:
                del module.forward
            else:
                module.forward = own


@contextmanager
def scale_units(
    model: nn.Module, units: Sequence[str], gamma: float, sae: Any = None
) -> Iterator[None]:
    """Eq. 4 during any forward (generation included): h_i <- gamma h_i for every unit in `units`."""
    if not units:
        yield
        return
    parsed = [parse_unit(u) for u in units]
    names = {p[0] for p in parsed}
    if len(names) != 1:
        raise IPGError(f"units mix granularities {sorted(names)}; scale one granularity at a time")
    gran = get_granularity(names.pop(), model, sae)
    by_layer: dict[int, list[int]] = {}
    for _, layer, index in parsed:
        by_layer.setdefault(layer, []).append(index)
    import torch

    gran.select_layers(list(by_layer))  # validates the layers
    for layer, ix in by_layer.items():
        n_units = gran.unit_shape(layer)[0]
        if max(ix) >= n_units:
            raise IPGError(f"unit index {max(ix)} >= {n_units} units in layer {layer}")
    fns = {
        layer: (lambda x, l=layer, idx=torch.tensor(ix), c={}: gran.scale(l, x, idx, gamma, c))
        for layer, ix in by_layer.items()
    }
    with edit_activations(gran, fns):
        yield
