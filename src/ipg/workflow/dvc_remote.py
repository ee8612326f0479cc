"""Check, before `dvc push` / `dvc pull`, that the project's DVC remote can be reached.

DVC reports a missing local remote deep inside a push. `check_remote(repo_root)` reads
.dvc/config (then .dvc/config.local, which overrides it), finds the remote (the one named,
else `core.remote`) and, for a local remote, raises a one-line IPGError naming the remote and
the fix when its folder does not exist and cannot be created (DVC creates a missing
folder on push when its parent is writable). Relative URLs are resolved against .dvc/, as DVC does.
Cloud remotes (s3://, gs://, ...) are returned unchecked: reaching them needs credentials.

    check_remote(".")  # -> Path of the remote folder, or the URL of a cloud remote
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ipg.errors import IPGError

CONFIG_FILES = ("config", "config.local")  # later files override earlier ones
_SECTION = re.compile(r"^\[\s*'?\s*(.+?)\s*'?\s*\]$")
_REMOTE = re.compile(r'^remote\s+"(.+)"$')


def read_dvc_config(repo_root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """{section: {key: value}} of .dvc/config merged with .dvc/config.local; remote sections
    are named 'remote "<name>"' (quotes around the whole header, as DVC writes them, dropped)."""
    dvc_dir = Path(repo_root) / ".dvc"
    if not dvc_dir.is_dir():
        raise IPGError(f"{Path(repo_root).resolve()} is not a DVC project (no .dvc/ folder); run "
                       f"`dvc init` there or pass the project's root")
    merged: dict[str, dict[str, str]] = {}
    for name in CONFIG_FILES:
        path = dvc_dir / name
        if not path.is_file():
            continue
        section = None
        for n, raw in enumerate(path.read_text().splitlines(), start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            header = _SECTION.match(line)
            if header:
                section = header.group(1).strip().strip("'").strip()
                section = re.sub(r"\s+", " ", section)
                merged.setdefault(section, {})
                continue
            if section is None or "=" not in line:
                raise IPGError(f"{path}:{n}: cannot parse {line!r} (expected [section] or "
                               f"key = value); fix it with `dvc config` or `dvc remote modify`")
            key, value = (part.strip() for part in line.split("=", 1))
            merged[section][key] = value.strip("'\"")
    return merged


def check_remote(repo_root: str | os.PathLike, name: str | None = None) -> Path | str | None:
    """The remote's folder (local) or URL (cloud); None when the project has no remote.

    IPGError (one line) when the remote is not defined or its local folder cannot be created.
    """
    config = read_dvc_config(repo_root)
    remotes = {m.group(1): values for section, values in config.items()
               if (m := _REMOTE.match(section))}
    name = name or config.get("core", {}).get("remote")
    if name is None:
        return None
    if name not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise IPGError(f"DVC remote '{name}' is not defined in .dvc/config (defined: {known}); "
                       f"add it with `dvc remote add -d {name} <path or url>`")
    url = remotes[name].get("url")
    if not url:
        raise IPGError(f"DVC remote '{name}' has no url; set it with "
                       f"`dvc remote modify {name} url <path or url>`")
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif re.match(r"^[a-z][a-z0-9+.-]*://", url):
        return url  # s3://, gs://, azure://, ssh://, http(s)://: not checked here
    folder = Path(url).expanduser()
    if not folder.is_absolute():
        folder = Path(repo_root) / ".dvc" / folder
    folder = Path(os.path.normpath(folder.absolute()))
    if folder.is_dir():
        return folder
    # DVC creates a missing local remote folder on push, if its nearest existing ancestor is a
    # writable folder; anything else (a file in the way, a read-only or absent mount) fails deep
    # inside the push.
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise IPGError(f"DVC remote '{name}' points to {folder}, which does not exist and cannot "
                       f"be created ({ancestor} is not a writable folder); point the remote "
                       f"elsewhere (dvc remote modify {name} url <path>)")
    return folder
