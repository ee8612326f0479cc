"""The engine's pass as it was before issue 16 (item 2), frozen, for timing side by side.

`surrogate.py` and `path.py` here are verbatim copies of src/ipg/attribution/{surrogate,path}.py
at commit 46febee (one import redirected to the copy). Inside `legacy_engine()`, every ipg
module that holds the current `sequence_logprobs` or `PathHooks` holds the frozen one instead,
so `ipg.attribution.ipg.attribute` runs the old pass (fixed 32 MiB softmax budget, temperature
on the logits, a - a' rebuilt in every hook and tap) with everything else unchanged:

    with legacy_engine():
        old = attribute(model, table, "neurons", cfg)   # the pre-change pass
    new = attribute(model, table, "neurons", cfg)

Used by ipg.bench.attribution (overhead rows "[before issue 16]"); the swap is by identity,
so it follows the names wherever a refactor of the engine moves them.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


def _pairs() -> list[tuple[object, object]]:
    from ipg.attribution import path, surrogate
    from ipg.bench.legacy import path as old_path
    from ipg.bench.legacy import surrogate as old_surrogate

    return [(surrogate.sequence_logprobs, old_surrogate.sequence_logprobs),
            (path.PathHooks, old_path.PathHooks)]


@contextmanager
def legacy_engine() -> Iterator[None]:
    """Within the block, the engine's modules use the frozen pre-issue-16 pass."""
    pairs = _pairs()
    swapped = []
    for mod in [m for name, m in list(sys.modules.items()) if name.startswith("ipg.") and m is not None]:
        if mod.__name__.startswith("ipg.bench.legacy"):
            continue
        for attr, value in list(vars(mod).items()):
            for new, old in pairs:
                if value is new:
                    setattr(mod, attr, old)
                    swapped.append((mod, attr, new))
    try:
        yield
    finally:
        for mod, attr, new in swapped:
            setattr(mod, attr, new)


def legacy(fn):
    """fn wrapped to run inside legacy_engine()."""
    def run(*args, **kwargs):
        with legacy_engine():
            return fn(*args, **kwargs)
    return run
