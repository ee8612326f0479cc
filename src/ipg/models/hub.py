"""Hugging Face Hub checkpoints, pinned by repo id and commit, fetched as safetensors only.

Adding a hub model is one entry in `HUB_MODELS`. Its build downloads only weights
(safetensors), JSON configs and tokenizer files with `huggingface_hub.snapshot_download`
(into the usual HF cache, then linked or copied into the model folder). Params may override
`repo_id` / `revision`, set `cache_dir`, or give `local_dir`: an existing local checkpoint
folder to copy the same files from (clusters without network, tests).
"""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ipg.errors import IPGError
from ipg.models import MODELS
from ipg.models.base import ModelSpec

# name -> (repo_id, revision). Revisions are full commit SHAs. They were not resolved against
# the hub from this (offline) machine; each is the HF-cache snapshot folder name that many
# independent public projects record for that repo, so it is a real commit of that repo.
# Check with `huggingface-cli download <repo> --revision <sha> config.json` when online.
HUB_MODELS: dict[str, tuple[str, str]] = {
    "r1-distill-qwen-1.5b": (
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "ad9f0ae0864d7fbcd1cd905e3c6c5b069cc8b562",
    ),
    "qwen2.5-math-1.5b-instruct": (
        "Qwen/Qwen2.5-Math-1.5B-Instruct",
        "aafeb0fc6f22cbf0eaeed126eff8be45b0360a35",
    ),
}

# Weights, configs and tokenizers only: never pickles (*.bin, *.pt) or code (*.py).
ALLOW_PATTERNS = ["*.safetensors", "*.json", "tokenizer*", "merges.txt", "*.jinja"]
IGNORE_PATTERNS = ["*.py", "*.bin", "*.pt", "*.pth", "*.pkl", "*.gguf", "*.msgpack", "*.h5"]


def _wanted(rel_path: str) -> bool:
    name = Path(rel_path).name
    return any(fnmatch.fnmatch(name, p) for p in ALLOW_PATTERNS) and not any(
        fnmatch.fnmatch(name, p) for p in IGNORE_PATTERNS
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = src.resolve()  # the HF cache holds symlinks to blobs
    try:
        os.link(src, dst)  # no second copy of gigabytes when on the same filesystem
    except OSError:
        shutil.copy2(src, dst)


def copy_checkpoint(src_dir: Path, out_dir: Path) -> list[str]:
    """Copy the weight, config and tokenizer files of a checkpoint folder; returns their paths."""
    copied = []
    for path in sorted(src_dir.rglob("*")):
        rel = path.relative_to(src_dir).as_posix()
        hidden = rel.startswith(".") or "/." in rel
        if hidden or rel == "model_card.json" or not path.is_file() or not _wanted(rel):
            continue
        _link_or_copy(path, out_dir / rel)
        copied.append(rel)
    return copied


def download(repo_id: str, revision: str, cache_dir: str | None = None) -> Path:
    """The local snapshot folder of repo_id@revision (downloaded unless cached)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import CachedRepoTreeNotFoundError, RevisionResolutionError

    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=ALLOW_PATTERNS,
                ignore_patterns=IGNORE_PATTERNS,
            )
        )
    except (OSError, ValueError, RevisionResolutionError, CachedRepoTreeNotFoundError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise IPGError(
            f"cannot fetch {repo_id}@{revision} from the Hugging Face Hub or its cache ({reason}); "
            "download it once with network (the study sets HF_HUB_OFFLINE=1 unless told otherwise: "
            "`make study HF_HUB_OFFLINE=0`, or HF_HUB_OFFLINE=0 snakemake ...), or set the model's params "
            "local_dir: <folder holding the checkpoint>"
        ) from None


def build_hub_model(repo_id: str, revision: str):
    """The builder of one hub checkpoint (defaults overridable through params)."""

    def build(out_dir: Path, params: dict[str, Any]) -> None:
        repo = params.get("repo_id") or repo_id
        rev = params.get("revision") or revision
        local_dir = params.get("local_dir")
        if local_dir:
            src = Path(local_dir).expanduser()
            if not src.is_dir():
                raise IPGError(f"params local_dir: folder '{src}' not found; point it at a checkpoint folder")
            source = {"local_dir": str(src.resolve())}
        else:
            src = download(repo, rev, params.get("cache_dir"))
            source = {"snapshot": src.name}  # the cache's snapshot folder is named by commit
        copied = copy_checkpoint(src, out_dir)
        if not copied:
            raise IPGError(f"{src}: no safetensors/config/tokenizer files found; is it a model checkpoint?")
        card = {"repo_id": repo, "revision": rev, "files": copied, **source}
        (out_dir / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")

    return build


for _name, (_repo, _rev) in HUB_MODELS.items():
    MODELS.add(
        _name,
        ModelSpec(
            name=_name,
            build=build_hub_model(_repo, _rev),
            chat=True,
            from_hub=True,
            description=f"{_repo} at commit {_rev} (safetensors)",
            default_params={"repo_id": _repo, "revision": _rev},
            param_keys=("repo_id", "revision", "local_dir", "cache_dir"),
        ),
    )
