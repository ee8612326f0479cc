"""The `ipg` commands that serve the study rather than run one of its stages:

    ipg ui                        browse the study's MLflow runs (mlflow ui on mlflow.db)
    ipg check [config] [dvc] [profile]   validate the config, the DVC remote, a Snakemake profile
    ipg bench SUITE               benchmark the engines (attribution, sampling, steering, workflow)

Each is (name, help, argument adder, function) in `TOOL_COMMANDS`; ipg.cli registers them
after its stage commands. Errors in user input are IPGErrors (one line, exit status 2).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable


def _ui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: local only)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--root", default=".", help="folder of mlflow.db and mlartifacts/ (default: .)")


def cmd_ui(args: argparse.Namespace) -> None:
    import signal

    from ipg.tracking import EXPERIMENT, init_store, runs_url, tracking_uri, ui

    uri = tracking_uri(args.root)
    experiment_id = init_store(uri, EXPERIMENT)
    server = ui(uri, host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the server on kill too
    print(f"MLflow UI for {uri} on {server.url}; the study's runs: "
          f"{runs_url(server.url, experiment_id)} (Ctrl-C stops it)", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checks", nargs="*", metavar="CHECK",
                   help="config, dvc and/or profile (default: all three)")
    p.add_argument("--configfile", default="config/default.yaml", help="the study config")
    p.add_argument("--profile", default="profiles/default", help="a Snakemake profile folder")
    p.add_argument("--dvc-root", default=".", help="the DVC project (the folder holding .dvc/)")
    p.add_argument("--remote", default=None, help="the DVC remote (default: core.remote)")


def cmd_check(args: argparse.Namespace) -> None:
    from ipg.workflow.checks import CHECK_NAMES, run_checks

    results = run_checks(args.checks or CHECK_NAMES, args.configfile, args.dvc_root, args.remote,
                         args.profile)
    for _, ok, line in results:
        print(f"ok: {line}" if ok else f"ipg: error: {line}", file=sys.stdout if ok else sys.stderr,
              flush=True)
    if not all(ok for _, ok, _ in results):
        raise SystemExit(2)


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", choices=["sampling", "steering", "workflow", "attribution"],
                   help="what to benchmark")
    p.add_argument("--model", action="append", default=[],
                   help="a random model name (random-qwen2-medium: attribution's default; "
                        "random-qwen2-tiny), a model folder or a built model name; repeat "
                        "(sampling/steering default: random-qwen2-tiny and organism if built)")
    p.add_argument("--quick", action="store_true", help="CI size (< 60 s; tiny model by default)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's for attribution, 1 for sampling/steering)")
    p.add_argument("--csv", default=None, help="default: reports/bench/{suite}.csv")
    p.add_argument("--png", default=None,
                   help="default: reports/bench/{suite}.png (attribution and sampling)")
    p.add_argument("--directory", default=None,
                   help="workflow: a finished study folder (default: build a test study in a "
                        "temporary folder; with --quick: dry-run a fresh folder)")
    p.add_argument("--configfile", default=None,
                   help="workflow: the study's config file (default: config/test.yaml when the "
                        "bench builds the study)")
    p.add_argument("--cores", type=int, default=2, help="workflow: cores to build the study")
    p.add_argument("--only", action="append", default=[],
                   help="attribution: run only these benches (repeat; chunk, overhead, captum, "
                        "naive, shared, memory, quadrature, flops, scaling)")


def cmd_bench(args: argparse.Namespace) -> None:
    csv = args.csv or f"reports/bench/{args.suite}.csv"
    png = args.png or f"reports/bench/{args.suite}.png"
    if args.suite == "attribution":
        from ipg.bench.attribution import format_table, run_bench

        frame = run_bench(args.model or None, args.quick, csv, png, args.threads,
                          benches=args.only or None)
    elif args.suite == "sampling":
        from ipg.bench.sampling import format_table, run_bench

        frame = run_bench(args.model or None, args.quick, csv, png, args.threads)
    elif args.suite == "steering":
        from ipg.bench.steering import format_table, run_bench

        frame = run_bench(args.model or None, args.quick, csv, args.threads)
        png = None
    else:
        from ipg.bench.workflow import format_table, run_bench

        frame = run_bench(args.directory, args.configfile, args.quick, csv, args.cores)
        png = None
    print(format_table(frame))
    print(f"wrote {csv}" + (f" and {png}" if png else ""))


TOOL_COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable]] = [
    ("ui", "browse the study's MLflow runs (mlflow ui on mlflow.db)", _ui_args, cmd_ui),
    ("check", "check the config, the DVC remote and a Snakemake profile before a run",
     _check_args, cmd_check),
    ("bench", "benchmark the study's engines (ratios measured side by side)", _bench_args,
     cmd_bench),
]
