"""`ipg bench workflow`: how long `snakemake -n` takes on a finished study directory.

    ipg bench workflow --directory DIR [--configfile config/test.yaml]

runs, interleaved (A, B, A, B, ...; medians), A = `snakemake -s Snakefile --directory DIR
--configfile CFG -n` (in a fresh process, as a user runs it) and B = `python -c 'import
snakemake'` (the interpreter + snakemake import floor, a normaliser for the machine's load).
Rows: the dry run's seconds (target < 5: absolute seconds are the target's unit) and its
CPU seconds (user + system: what it costs without the wait for a core), the import's seconds, their ratio, and the jobs the dry run would run (0 on a finished study).
Without --directory the bench first builds a finished test-config study in a temporary
folder (`snakemake --cores N`, minutes); --quick dry-runs a fresh empty folder instead (no
build: it checks the command, its DAG is the whole study's).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from ipg.bench.sampling import COLUMNS, default_log, format_table, meets, write_csv
from ipg.errors import IPGError

REPO = Path(__file__).resolve().parents[3]
SNAKEFILE = REPO / "Snakefile"
TEST_CONFIG = REPO / "config" / "test.yaml"
FULL_REPS, QUICK_REPS = 5, 1


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def snakemake_cmd(directory: str | Path, configfile: str | Path | None, *extra: str,
                  snakefile: str | Path = SNAKEFILE) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(directory)]
    if configfile:
        cmd += ["--configfile", str(configfile)]
    return cmd + list(extra)


def build_study(directory: str | Path, configfile: str | Path | None, cores: int,
                log: Callable[[str], None]) -> None:
    """Run the study to completion in `directory` (the default input of the bench)."""
    log(f"building a finished study in {directory} ({configfile}, {cores} cores) ...")
    start = time.perf_counter()
    res = subprocess.run(snakemake_cmd(directory, configfile, "--cores", str(cores)),
                         env=_env(), capture_output=True, text=True)
    if res.returncode:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-20:])
        raise IPGError(f"building the study in {directory} failed:\n{tail}")
    log(f"  built in {time.perf_counter() - start:.0f} s")


def dry_run_jobs(output: str) -> int:
    """Jobs a dry run would run, from its output (0: nothing to be done)."""
    if "Nothing to be done" in output:
        return 0
    match = re.search(r"^total\s+(\d+)", output, flags=re.M)
    if not match:
        raise IPGError(f"cannot read the dry run's job count:\n{output[-2000:]}")
    return int(match.group(1))


def run_bench(directory: str | Path | None = None, configfile: str | Path | None = None,
              quick: bool = False, csv_path: str | Path | None = None, cores: int = 2,
              reps: int | None = None, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    log = log or default_log
    reps = reps or (QUICK_REPS if quick else FULL_REPS)
    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="ipg-bench-workflow-")
        directory = tmp.name
        configfile = configfile or TEST_CONFIG
        if not quick:
            build_study(directory, configfile, cores, log)
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise IPGError(f"study directory {directory} does not exist")
    dry = snakemake_cmd(directory, configfile, "-n")
    imp = [sys.executable, "-c", "import snakemake"]
    outputs: dict[str, str] = {}
    times: dict[str, list[float]] = {"dry": [], "import": []}
    cpu: list[float] = []  # the dry run's CPU seconds (user + system of the child)
    try:
        for _ in range(reps):
            for key, cmd in (("dry", dry), ("import", imp)):
                start, before = time.perf_counter(), os.times()
                res = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
                times[key].append(time.perf_counter() - start)
                after = os.times()
                if key == "dry":
                    cpu.append(after.children_user + after.children_system
                               - before.children_user - before.children_system)
                if res.returncode:
                    raise IPGError(f"`{' '.join(cmd)}` failed:\n{(res.stdout + res.stderr)[-2000:]}")
                outputs[key] = res.stdout + res.stderr
    finally:
        if tmp is not None:
            tmp.cleanup()
    import statistics

    med = {k: statistics.median(v) for k, v in times.items()}
    jobs = dry_run_jobs(outputs["dry"])
    label = "fresh folder" if (quick and tmp is not None) else (
        "finished test study (built here)" if tmp is not None else str(directory))
    shapes = f"{label}; config {configfile or 'default'}; {reps} reps"
    rows = []

    def row(bench, variant, value, unit, target=""):
        rows.append(dict(bench=bench, variant=variant, model="workflow", shapes=shapes, threads=1,
                         value=float(value), unit=unit, target=target,
                         meets_target=meets(float(value), target)))
        log(f"  {bench:<22} {variant:<36} {value:>10.4g} {unit} {target}")

    log(f"== workflow: snakemake -n on {label}")
    row("dry_run_seconds", "snakemake -n", med["dry"], "s", "< 5")
    row("dry_run_cpu_seconds", "snakemake -n, CPU (user + system)", statistics.median(cpu), "s")
    row("import_seconds", "python -c 'import snakemake'", med["import"], "s")
    row("dry_run_over_import", "snakemake -n / import snakemake", med["dry"] / med["import"], "ratio")
    row("dry_run_jobs", "jobs the dry run would run", jobs, "jobs", "<= 0" if not quick else "")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(frame, csv_path)
    return frame


__all__ = ["run_bench", "format_table", "build_study", "dry_run_jobs"]
