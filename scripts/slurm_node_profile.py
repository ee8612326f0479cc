"""Write profiles/slurm fitted to the running one-node Slurm (scripts/slurm_single_node.sh).

    .venv/bin/python scripts/slurm_node_profile.py /tmp/slurm-node
    .venv/bin/snakemake --profile /tmp/slurm-node --configfile config/test.yaml

The copy keeps the profile's partitions and rule lists and changes only what one small node
cannot give: threads and `cores` capped to the node's CPUs, memory to its share per CPU, no
`gpu` request (the node has none), and job status from `squeue` (no accounting database).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def node_resources() -> dict[str, int]:
    """{'cpus', 'mem_mb'} of the Slurm node (sinfo)."""
    line = subprocess.run(["sinfo", "-h", "-N", "-o", "%c %m"], capture_output=True, text=True,
                          check=True).stdout.split()
    return {"cpus": int(line[0]), "mem_mb": int(line[1])}


def fitted_profile(node: dict[str, int], profile: Path = ROOT / "profiles" / "slurm",
                   cores: int | None = None) -> dict:
    """The profile's config with threads (and `cores`, `jobs`) capped to the node's CPUs, or to
    `cores` when given (fewer threads a job, e.g. to match a local `--cores N` run)."""
    cfg = yaml.safe_load((profile / "config.yaml").read_text())
    cpus, mem = min(node["cpus"], cores or node["cpus"]), node["mem_mb"] // node["cpus"]
    cfg.update({"cores": cpus, "jobs": cpus, "latency-wait": 5,
                "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 5,
                "slurm-keep-successful-logs": True})
    cfg["default-resources"]["mem_mb"] = min(cfg["default-resources"]["mem_mb"], mem)
    for res in cfg["set-resources"].values():
        res.pop("gpu", None)
        res["mem_mb"] = min(res["mem_mb"], mem)
    cfg["set-threads"] = {rule: min(t, cpus) for rule, t in cfg["set-threads"].items()}
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the profile folder to write (config.yaml inside)")
    parser.add_argument("--cores", type=int, default=None,
                        help="threads a job at most (default: the node's CPUs)")
    args = parser.parse_args(argv)
    if args.cores is not None and args.cores < 1:
        parser.error(f"--cores {args.cores}: give a positive number of threads, e.g. --cores 2")
    try:
        node = node_resources()
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        print("slurm_node_profile: no Slurm node answers `sinfo`; run "
              "scripts/slurm_single_node.sh first", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = fitted_profile(node, cores=args.cores)
    (args.out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"{args.out}/config.yaml: profiles/slurm for a node of {node['cpus']} CPUs, "
          f"{node['mem_mb']} MB ({cfg['cores']} threads a job)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
