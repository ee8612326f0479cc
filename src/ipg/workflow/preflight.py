"""Checks `make study` runs before Snakemake: its arguments, and a lock left by a killed run.

    python -m ipg.workflow.preflight [SNAKEMAKE ARGS...]

- `--configfile` takes every following word as a config file, so a target placed after it (or
  a missing file) made Snakemake print a traceback: here it is one line naming the file.
- A run killed with `kill -9` leaves `.snakemake/locks/`; the next run then refused to start
  until `--unlock`. If no Snakemake process runs in this folder, the lock is stale and is
  removed (what `snakemake --unlock` does); a live run's lock is left alone.
Exit status 2 with one line on stderr on a bad argument.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ipg.errors import IPGError

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_NOT_SNAKEMAKE = {"sh", "bash", "dash", "zsh", "make", "gmake", "timeout", "nice", "env"}


def check_configfiles(args: list[str]) -> list[str]:
    """The --configfile values of a Snakemake command line; IPGError if one is missing or is
    not a YAML/JSON file (a target written after --configfile)."""
    files: list[str] = []
    taking = False
    for arg in args:
        if arg in ("--configfile", "--configfiles"):
            taking = True
            continue
        if arg.startswith("--configfile="):
            files.append(arg.split("=", 1)[1])
            continue
        if arg.startswith("-"):
            taking = False
            continue
        if taking:
            files.append(arg)
    for f in files:
        if not f.endswith(CONFIG_SUFFIXES):
            raise IPGError(f"--configfile {f}: not a .yaml/.json config; --configfile takes every "
                           f"word after it as a config file: put targets before --configfile "
                           f"(snakemake {f} --configfile CONFIG)")
        if not Path(f).is_file():
            raise IPGError(f"--configfile {f}: no such file; give an existing config, e.g. "
                           f"config/test.yaml (ls config/)")
    return files


def _is_snakemake(argv: list[str]) -> bool:
    if not argv or Path(argv[0]).name in _NOT_SNAKEMAKE:
        return False
    if any(Path(a).name == "snakemake" for a in argv[:2]):
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(argv, argv[1:]))


def snakemake_running_in(folder: Path) -> list[int]:
    """Pids of Snakemake processes (not shells that mention it) whose working directory is
    `folder` (Linux /proc; elsewhere none are found)."""
    folder = folder.resolve()
    skip = {os.getpid(), os.getppid()}
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(proc.name)
            if pid in skip:
                continue
            argv = proc.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0")
            if _is_snakemake([a for a in argv if a]) and Path(os.readlink(proc / "cwd")) == folder:
                pids.append(pid)
        except (OSError, ValueError):
            continue  # gone, or not ours to read
    return pids


def clear_stale_lock(folder: Path = Path(".")) -> bool:
    """Remove .snakemake/locks/* when no Snakemake process runs in `folder`; True if removed."""
    locks = folder / ".snakemake" / "locks"
    files = sorted(locks.glob("*")) if locks.is_dir() else []
    if not files or snakemake_running_in(folder):
        return False
    for f in files:
        f.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        check_configfiles(args)
    except IPGError as err:
        print(f"make study: error: {err}", file=sys.stderr)
        return 2
    if clear_stale_lock(Path(".")):
        print("make study: removed the lock of an interrupted Snakemake run (no Snakemake process "
              "runs in this folder); resuming", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
