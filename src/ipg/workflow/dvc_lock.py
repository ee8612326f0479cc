"""Record a finished Snakemake study in dvc.lock, so `dvc status` is clean and `dvc push` pushes.

`make study` runs Snakemake, not `dvc repro`, so DVC has no lock file and marks every stage
changed. `commit_study(repo_root)` creates the folder outputs a study leaves out (a stage's
`mkdir -p`, e.g. results/transfer without transfer pairs), then runs `dvc commit --force`,
which hashes every stage's deps, params and outs into dvc.lock and the outs into .dvc/cache
(nothing is rebuilt). `python -m ipg.workflow.dvc_lock` does it in the current folder.

    commit_study(".")  # -> the stage names now in dvc.lock
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ipg.errors import IPGError


def stage_outs(dvc_yaml: dict) -> dict[str, list[str]]:
    """{stage: [out path, ...]} of dvc.yaml's stages (outs and metrics)."""
    found = {}
    for name, stage in (dvc_yaml.get("stages") or {}).items():
        entries = [*(stage.get("outs") or []), *(stage.get("metrics") or [])]
        found[name] = [e if isinstance(e, str) else next(iter(e)) for e in entries]
    return found


def commit_study(repo_root: str | os.PathLike = ".") -> list[str]:
    """Write dvc.lock for the outputs on disk; IPGError naming the stage/output that is missing."""
    root = Path(repo_root)
    dvc_file = root / "dvc.yaml"
    if not (root / ".dvc").is_dir() or not dvc_file.is_file():
        raise IPGError(f"{root.resolve()} has no .dvc/ and dvc.yaml; run this in the project's root")
    outs = stage_outs(yaml.safe_load(dvc_file.read_text()) or {})
    for stage, paths in outs.items():
        for path in paths:
            target = root / path
            if not target.exists():
                if Path(path).suffix:  # a file: the study did not finish this stage
                    raise IPGError(f"dvc.yaml stage '{stage}': output {path} is missing; finish "
                                   f"the study first (make study)")
                target.mkdir(parents=True)  # an empty stage folder, as the stage's mkdir -p
    result = subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet"],
                            cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        reason = " ".join((result.stderr or result.stdout).split())[-300:]
        raise IPGError(f"`dvc commit --force` failed in {root.resolve()}: {reason}")
    return list(outs)


def main() -> int:
    try:
        stages = commit_study(".")
    except IPGError as err:
        print(f"ipg.workflow.dvc_lock: {err}", file=sys.stderr)
        return 1
    print(f"dvc.lock: {len(stages)} stages recorded ({', '.join(stages)}); `dvc push` uploads them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
