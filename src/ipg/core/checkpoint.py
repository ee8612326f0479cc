"""Chunked progress next to an output, so that a killed run loses at most one chunk.

A long loop (trajectory sampling: a batch of prompts; attribution: a batch of prompts'
per-prompt scores; steering: one condition x seed sampler call) saves each finished chunk
into `<output>.chunks/` and, when rerun, loads the chunks it finds instead of recomputing
them. The folder is not a Snakemake output, so Snakemake's cleanup of an incomplete output
leaves it alone; `clear()` removes it once the final output has been written (atomically).

    store = ChunkStore.for_output("scores.parquet", fingerprint(["model/", "traj.parquet"],
                                  method={...}, seed=0), chunk_size=8)
    for items, payload, resumed in store.run(n_prompts, compute):  # compute(range) -> payload
        ...apply payload...
    write the output atomically; store.clear()

The store is keyed by a hash of everything that determines the result (the inputs' paths,
sizes and mtimes, the params, the seed, the chunk size): a store written under another key
is discarded with a log line, never reused. A payload is a dict of numpy arrays (float64
round-trips bitwise) and JSON values (Python floats round-trip bitwise through repr); each
chunk file is written to a temporary name and renamed, so a chunk is either whole or absent.
Results are identical with or without a kill only if each chunk's computation depends on
(seed, chunk identity) alone, never on state left by earlier chunks: callers guarantee that.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ipg.errors import IPGError

log = logging.getLogger(__name__)
Payload = dict[str, Any]  # name -> np.ndarray or a JSON value
_KEY_FILE = "key.json"
_JSON = "json:"  # npz entry prefix of a JSON-encoded value


def _describe(path: Path) -> list:
    """[relative name, size, mtime_ns] of a file, or of every file under a folder (sorted)."""
    if not path.exists():
        return [str(path), None]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [str(path.resolve())] + [
        [str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size,
         p.stat().st_mtime_ns] for p in files]


def fingerprint(paths: Sequence[str | os.PathLike], **params: Any) -> str:
    """sha256 of the inputs (path, size, mtime of every file) and the params (JSON, sorted)."""
    state = {"inputs": [_describe(Path(p)) for p in paths], "params": params}
    text = json.dumps(state, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def chunk_ranges(n_items: int, size: int) -> list[range]:
    """[0, size), [size, 2 size), ... covering range(n_items)."""
    return [range(s, min(n_items, s + size)) for s in range(0, n_items, size)]


class ChunkStore:
    """Chunks of one output's computation under `folder`, valid for one `key` (a hash)."""

    def __init__(self, folder: str | os.PathLike, key: str, chunk_size: int = 1,
                 after_save: Callable[[str], None] | None = None) -> None:
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise IPGError(f"chunk size must be an integer >= 1, got {chunk_size!r}")
        self.folder, self.chunk_size = Path(folder), int(chunk_size)
        self.key = hashlib.sha256(f"{key}/chunk_size={self.chunk_size}".encode()).hexdigest()
        self.after_save = after_save  # called with the chunk's name after it is saved (tests)
        self.resumed = 0  # chunks loaded instead of computed
        self._open()

    @classmethod
    def for_output(cls, output: str | os.PathLike, key: str, chunk_size: int = 1,
                   after_save: Callable[[str], None] | None = None) -> "ChunkStore":
        """The store of `output`: the folder `<output>.chunks` beside it."""
        output = Path(output)
        return cls(output.with_name(output.name + ".chunks"), key, chunk_size, after_save)

    def _open(self) -> None:
        key_file = self.folder / _KEY_FILE
        if self.folder.exists():
            try:
                found = json.loads(key_file.read_text())["key"]
            except (OSError, ValueError, KeyError, TypeError):
                found = None
            if found == self.key:
                n = len(list(self.folder.glob("chunk-*.npz")))
                if n:
                    log.info("resuming from %s: %d saved chunk(s)", self.folder, n)
                return
            log.warning("discarding stale chunks in %s (written for other inputs, params or "
                        "chunk size)", self.folder)
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(key_file, json.dumps({"key": self.key}).encode())

    def _path(self, name: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.=-]+", name):
            raise IPGError(f"chunk name {name!r} must be letters, digits and _ . = - only")
        return self.folder / f"chunk-{name}.npz"

    def _write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def save(self, name: str, payload: Payload) -> None:
        """Write one chunk atomically (arrays as npz, anything else as JSON)."""
        arrays = {}
        for k, v in payload.items():
            if isinstance(v, np.ndarray):
                if v.dtype == object:
                    raise IPGError(f"chunk entry '{k}' is an object array; store it as JSON")
                arrays[k] = v
            else:
                arrays[_JSON + k] = np.array(json.dumps(v))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self._write(self._path(name), buf.getvalue())
        if self.after_save is not None:
            self.after_save(name)

    def load(self, name: str) -> Payload | None:
        """The saved payload of chunk `name`, or None if it is absent or unreadable."""
        path = self._path(name)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                out = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable chunk %s (%s); recomputing it", path, exc)
            return None
        self.resumed += 1
        return {(k[len(_JSON):] if k.startswith(_JSON) else k):
                (json.loads(str(v)) if k.startswith(_JSON) else v) for k, v in out.items()}

    def run(self, n_items: int, compute: Callable[[range], Payload]
            ) -> Iterator[tuple[range, Payload, bool]]:
        """(items, payload, resumed) for each chunk of range(n_items), in order: loaded if
        saved, else compute(items) saved first. Callers apply both kinds of payload alike."""
        yield from run_chunks(self, n_items, compute)

    def clear(self) -> None:
        """Remove the store (call after the final output has been written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def run_chunks(store: ChunkStore | None, n_items: int, compute: Callable[[range], Payload],
               chunk_size: int | None = None) -> Iterator[tuple[range, Payload, bool]]:
    """As ChunkStore.run; with no store, chunks of `chunk_size` items (default: one chunk of
    every item), computed and not saved."""
    size = store.chunk_size if store is not None else (chunk_size or max(n_items, 1))
    for c, items in enumerate(chunk_ranges(n_items, size)):
        name = f"{c:05d}"
        payload = store.load(name) if store is not None else None
        if payload is not None:
            yield items, payload, True
            continue
        payload = compute(items)
        if store is not None:
            store.save(name, payload)
        yield items, payload, False
