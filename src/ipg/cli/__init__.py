"""`ipg` command line: the study's stages for ad-hoc use outside the workflow.

    ipg list                      registered models and tasks
    ipg prepare --task T          prepare a task's splits into a parquet file
    ipg build --model M           build a model folder (train / convert / download)
    ipg sample --model M --task T -n N   sample and score trajectories, print a summary
    ipg attribute --model M --task T --granularity neurons --reward accuracy   IPG or a baseline
    ipg steer --model M --units F --gamma 2 "prompt"   unsteered vs steered completion
    ipg evaluate --model M --task T --attribution F    steering sweep with CIs (held-out)
    ipg check [config] [dvc] [profile]   validate the config, the DVC remote, a Snakemake profile
    ipg ui / ipg bench SUITE      MLflow UI, benchmarks (these three: ipg.cli.tools)

Commands that load a model take --device (default: $IPG_DEVICE, else a GPU if any, else the
CPU; ipg.core.devices). Errors in user input print one line (no traceback) and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from ipg.cli.tools import TOOL_COMMANDS
from ipg.errors import IPGError
from ipg.workflow.scripting import set_offline_env

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_text: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register a subcommand; later stages add theirs the same way."""

    def register(func: Callable) -> Callable:
        COMMANDS[name] = (help_text, add_args, func)
        return func

    return register


def resolve_model_dir(model: str, results_dir: str = "results") -> tuple[Path, bool]:
    """A model name (built under results/models/) or a path -> (folder, uses chat template)."""
    from ipg.models import MODELS
    from ipg.models.built import card_name, find_model_dir

    path = find_model_dir(model, results_dir)
    if path is None:
        raise IPGError(
            f"model '{model}' is neither a folder nor built under {results_dir}/models/; "
            f"build it with `ipg build --model {model}` or `snakemake {results_dir}/models/{model}`"
        )
    name = card_name(path, model)
    chat = MODELS.get(name).chat if name in MODELS else True
    return path, chat


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N, mps or auto (default: $IPG_DEVICE, else a GPU if any)")


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results",
                   help="the study's results folder (a model is built under RESULTS/models/NAME)")
    p.add_argument("--prepared", default="data/prepared",
                   help="where prepared tasks live (a task is prepared as PREPARED/NAME.parquet)")


def list_lines(results: str | Path = "results", prepared: str | Path = "data/prepared") -> list[str]:
    """One line per registered model and task: name, whether built / prepared, what it is."""
    from ipg.models import MODELS
    from ipg.tasks import TASKS

    width = max(len(n) for n in [*MODELS.names(), *TASKS.names()]) + 2
    lines = ["models (built: RESULTS/models/NAME holds config.json):"]
    for name in MODELS.names():
        spec = MODELS.get(name)
        built = "built" if (Path(results) / "models" / name / "config.json").is_file() else "not built"
        lines.append(f"  {name:<{width}} {built:<12} {spec.description}")
    lines.append("tasks (prepared: PREPARED/NAME.parquet):")
    for name in TASKS.names():
        task = TASKS.get(name)
        ready = "prepared" if (Path(prepared) / f"{name}.parquet").is_file() else "not prepared"
        lines.append(f"  {name:<{width}} {ready:<12} {task.description}")
    return lines


@command("list", "list registered models and tasks: what each is and whether it is built",
         _list_args)
def cmd_list(args: argparse.Namespace) -> None:
    print("\n".join(list_lines(args.results, args.prepared)))


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--n-attribution", type=int, default=32)
    p.add_argument("--n-heldout", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: data/prepared/{task}.parquet")


@command("prepare", "prepare a task's attribution and held-out splits", _prepare_args)
def cmd_prepare(args: argparse.Namespace) -> None:
    from ipg.tasks.prepare import prepare_task, write_prepared

    frame = prepare_task(args.task, args.n_attribution, args.n_heldout, args.seed, {})
    out = args.out or f"data/prepared/{args.task}.parquet"
    write_prepared(frame, out)
    print(f"wrote {len(frame)} rows to {out}")


def _build_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--out", default=None, help="default: results/models/{model}")
    p.add_argument("--params", default="{}", help="builder parameters as JSON")


@command("build", "build a model folder (train, convert or download)", _build_args)
def cmd_build(args: argparse.Namespace) -> None:
    from ipg.models import get_model_spec
    from ipg.models.load import build_model

    params = json.loads(args.params)
    params.setdefault("requires_dirs", {
        dep: f"results/models/{dep}" for dep in get_model_spec(args.model).requires})
    out = args.out or f"results/models/{args.model}"
    build_model(args.model, out, params)
    print(f"built {args.model} in {out}")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    """The sampling options; None: the config schema's `sampling` defaults (_sampling)."""
    p.add_argument("-G", "--samples-per-prompt", type=int, default=None, help="default: the schema's")
    p.add_argument("--temperature", type=float, default=None, help="default: the schema's")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the schema's")


def _sampling(args: argparse.Namespace) -> Any:
    """The options' ipg.config.jobs.SamplingSettings (as a sample_trajectories job gets them)."""
    from ipg.config.jobs import SamplingSettings

    given = dict(samples_per_prompt=args.samples_per_prompt, temperature=args.temperature,
                 max_new_tokens=args.max_new_tokens)
    return SamplingSettings.from_dict({k: v for k, v in given.items() if v is not None})


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model name built under results/models, or a folder")
    p.add_argument("--task", required=True)
    p.add_argument("-n", "--n-prompts", type=int, default=8, help="prompts from the attribution split")
    _sampling_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the trajectory table to this parquet file")
    p.add_argument("--show", type=int, default=2, help="print this many trajectories")
    _device_arg(p)


@command("sample", "sample and score trajectories of a model on a task", _sample_args)
def cmd_sample(args: argparse.Namespace) -> None:
    from ipg.models.load import load_model
    from ipg.tasks.prepare import prepare_task
    from ipg.study.trajectories import trajectories_for_prompts, write_table_atomic

    sampling = _sampling(args)  # bad options: one line before loading anything
    model_dir, chat = resolve_model_dir(args.model)
    prepared = prepare_task(args.task, args.n_prompts, 1, args.seed, {})
    prepared = prepared[prepared["split"] == "attribution"]
    model, tokenizer = load_model(model_dir, device=args.device)
    frame, metrics = trajectories_for_prompts(
        model, tokenizer, prepared, args.task, chat, sampling.samples_per_prompt,
        sampling.sampler(args.seed))
    for _, row in frame.head(args.show).iterrows():
        print(f"--- {row.prompt_id} sample {row.sample_id} (reward {row.reward_accuracy:.0f}, "
              f"{row.reward_length:.0f} tokens)\n{row.text}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
                     indent=1))
    if args.out:
        write_table_atomic(frame, args.out)


def check_table_fits(scores: Any, model: Any, sae: Any, path: str) -> None:
    """An attribution table's units must be this model's: its layers exist and each holds the
    model's number of units of the granularity (a table of another model: one line)."""
    from ipg.core.units import get_granularity

    if scores.empty:
        return
    name = str(scores["granularity"].iloc[0])
    gran = get_granularity(name, model, sae)
    layers = gran.available_layers()
    for layer, n_table in (scores.groupby("layer")["index"].max() + 1).items():
        if int(layer) not in layers:
            raise IPGError(f"units file {path}: its table has {name} in layer {int(layer)}, this "
                           f"model has layers {layers[0]}..{layers[-1]}; it was attributed on "
                           f"another model: pass that model's --model or attribute this one")
        n_model = gran.unit_shape(int(layer))[0]
        if int(n_table) != n_model:
            raise IPGError(f"units file {path}: its table has {int(n_table)} {name} in layer "
                           f"{int(layer)}, this model has {n_model}; it was attributed on another "
                           f"model: pass that model's --model or attribute this one")


def _read_units(path: str, k: int | None, selection: str, per_layer: bool) -> list[str]:
    """Unit ids from an attribution parquet (top k by `selection`) or a .txt file (one per line)."""
    from ipg.attribution.table import read_attribution, select_units

    p = Path(path)
    if not p.is_file():
        raise IPGError(f"units file {p} does not exist; pass an attribution .parquet or a .txt of unit ids")
    if p.suffix == ".parquet":
        return select_units(read_attribution(p).scores, 20 if k is None else k, selection, per_layer)
    units = [line.split("#")[0].strip() for line in p.read_text().splitlines()]
    units = [u for u in units if u]
    return units if k is None else units[:k]


def side_by_side(left: str, right: str, titles: tuple[str, str], width: int | None = None) -> str:
    """Two texts in two wrapped columns (newlines kept)."""
    import shutil
    import textwrap

    col = max(20, ((width or shutil.get_terminal_size((120, 20)).columns) - 3) // 2)

    def wrap(text: str) -> list[str]:
        return [w for line in text.splitlines() or [""] for w in (textwrap.wrap(line, col) or [""])]

    a, b = wrap(left), wrap(right)
    a += [""] * (len(b) - len(a))
    b += [""] * (len(a) - len(b))
    lines = [f"{titles[0]:<{col}} | {titles[1]}", f"{'-' * col}-+-{'-' * col}"]
    return "\n".join(lines + [f"{x:<{col}} | {y}" for x, y in zip(a, b)])


def _steer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model name built under results/models, or a folder")
    p.add_argument("--units", required=True, help="attribution .parquet (top k) or .txt of unit ids")
    p.add_argument("--k", type=int, default=None, help="units to steer (default: 20 from a table, all from .txt)")
    p.add_argument("--selection", default="signed", choices=["signed", "bottom", "magnitude"])
    p.add_argument("--per-layer", action="store_true", help="take k units from every layer")
    p.add_argument("--gamma", type=float, default=2.0, help=">1 enhance, <1 suppress, 0 ablate")
    p.add_argument("--sae", action="append", default=[], help="SAE folder (for sae.L*.f* units; repeat)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="the same seed drives both completions")
    p.add_argument("--width", type=int, default=None, help="output width (default: the terminal's)")
    p.add_argument("prompt", help="the user prompt (wrapped in the chat template for chat models)")
    _device_arg(p)


@command("steer", "complete a prompt with and without scaling units by gamma (Eq. 4)", _steer_args)
def cmd_steer(args: argparse.Namespace) -> None:
    from ipg.core.intervention import check_gamma, steer
    from ipg.models.load import load_model, render_prompt
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    check_gamma(args.gamma)
    cfg = SamplingConfig(args.temperature, args.max_new_tokens, 1, args.seed)
    units = _read_units(args.units, args.k, args.selection, args.per_layer)
    model_dir, chat = resolve_model_dir(args.model)
    model, tokenizer = load_model(model_dir, device=args.device)
    sae = None
    if args.sae:
        from ipg.core.devices import model_device
        from ipg.sae import load_sae

        sae = [load_sae(d, device=model_device(model)) for d in args.sae]
    if Path(args.units).suffix == ".parquet":
        from ipg.attribution.table import read_attribution

        check_table_fits(read_attribution(args.units).scores, model, sae, args.units)
    prompt = render_prompt(tokenizer, args.prompt, chat)

    def complete() -> str:
        traj = sample_trajectories(model, tokenizer, [prompt], 1, cfg, progress=False)[0][0]
        return tokenizer.decode(traj.gen_ids, skip_special_tokens=True)

    plain = complete()
    with steer(model, units, args.gamma, sae=sae):
        _check_finite_logits(model, tokenizer, prompt, args.gamma)
        steered = complete()
    shown = ", ".join(units[:5]) + (f", ... ({len(units)} units)" if len(units) > 5 else "")
    print(f"steering {shown} by gamma = {args.gamma:g} (seed {args.seed}, T = {args.temperature:g})")
    print(side_by_side(plain, steered, ("unsteered", f"steered (gamma = {args.gamma:g})"), args.width))


def _check_finite_logits(model: Any, tokenizer: Any, prompt: str, gamma: float) -> None:
    """One forward of the prompt under the active steering; non-finite logits -> IPGError."""
    import torch

    from ipg.core.devices import model_device

    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model_device(model))
    with torch.no_grad():
        logits = model(input_ids=ids).logits  # [1, T, vocab]
    if not torch.isfinite(logits).all():
        raise IPGError(f"steering by gamma = {gamma:g} makes the model's logits non-finite "
                       "(inf/nan); use a smaller --gamma")


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model name built under results/models, or a folder")
    p.add_argument("--task", required=True)
    p.add_argument("--attribution", required=True, help="attribution .parquet of that model and task")
    p.add_argument("--prepared", default=None, help="default: data/prepared/{task}.parquet")
    # defaults (None): the config schema's steering defaults (ipg.config.jobs.SteeringConfig)
    p.add_argument("--ks", type=int, nargs="+", default=None, help="default: the schema's (neurons)")
    p.add_argument("--gammas", type=float, nargs="+", default=None, help="default: the schema's")
    p.add_argument("--selections", nargs="+", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("-G", "--samples-per-prompt", type=int, default=None)
    p.add_argument("-n", "--n-prompts", type=int, default=None, help="first n held-out prompts")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--control-temperatures", type=float, nargs="*", default=None)
    p.add_argument("--sae", action="append", default=[], help="SAE folder (sae granularity; repeat)")
    p.add_argument("--out", default="results/steering", help="folder for rows.parquet, summary.csv, rows.json")
    _device_arg(p)


@command("evaluate", "steering accuracy / length / entropy on held-out prompts, with CIs", _evaluate_args)
def cmd_evaluate(args: argparse.Namespace) -> None:
    from ipg.study.steering import run_steering
    from ipg.config.jobs import SteeringConfig

    model_dir, chat = resolve_model_dir(args.model)
    given = dict(ks=args.ks, gammas=args.gammas, selections=args.selections, seeds=args.seeds,
                 samples_per_prompt=args.samples_per_prompt, n_prompts=args.n_prompts,
                 temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                 control_temperatures=args.control_temperatures)
    # the rest: the schema's defaults; bad values: one line before loading anything
    params = SteeringConfig.from_dict({k: v for k, v in given.items() if v is not None})
    out = Path(args.out)
    summary = run_steering(str(model_dir), args.prepared or f"data/prepared/{args.task}.parquet",
                           args.attribution, args.task, chat, params, str(out / "rows.parquet"),
                           str(out / "summary.csv"), sae_dirs=args.sae, progress=True,
                           device=args.device)
    cols = ["condition", "accuracy", "accuracy_lo", "accuracy_hi", "d_accuracy", "length", "entropy"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out / 'rows.parquet'}, {out / 'summary.csv'}, {out / 'rows.json'}")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless its help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or not action.option_strings
                or action.default == []):
            return text
        return text + " (default: %(default)s)"


# help for the options that share a meaning across subcommands (when a command gives none)
OPTION_HELP = {
    "task": "a registered task (see `ipg list`)",
    "n_attribution": "prompts in the attribution split",
    "n_heldout": "prompts in the held-out (steering) split",
    "seed": "random seed",
    "samples_per_prompt": "trajectories sampled per prompt (G)",
    "temperature": "sampling temperature",
    "max_new_tokens": "tokens generated per trajectory at most",
    "selection": "which units: signed (top scores), bottom, or magnitude (|score|)",
    "ks": "numbers of units to steer",
    "gammas": "steering factors (0 ablates, <1 suppresses, >1 enhances)",
    "selections": "unit selections to evaluate (signed, bottom, magnitude)",
    "seeds": "sampling seeds",
    "control_temperatures": "temperatures of the sharpening control (none: no control)",
    "model": "a registered model (see `ipg list`) or a model folder",
    "n_prompts": "prompts to use",
    "port": "the port to serve on",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.help is None and action.dest in OPTION_HELP:
            action.help = OPTION_HELP[action.dest]


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")



def _attribute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model name built under results/models, or a folder")
    p.add_argument("--task", required=True)
    p.add_argument("--granularity", default="neurons", help="neurons, heads, layers or sae")
    p.add_argument("--reward", default="accuracy", help="accuracy or length")
    p.add_argument("--method", default="ipg", help="ipg, act, freq, gxa, ig_likelihood, contrastive, random")
    p.add_argument("--trajectories", default=None, help="a trajectory parquet (default: sample now)")
    p.add_argument("-n", "--n-prompts", type=int, default=8)
    _sampling_args(p)
    p.add_argument("--m", type=int, default=None, help="path points (IPG; default: IPGConfig's)")
    p.add_argument("--sae", default=None, help="SAE folder root (granularity sae)")
    p.add_argument("--top", type=int, default=10, help="print this many top units")
    p.add_argument("--out", default=None, help="write the attribution table to this parquet file")
    p.add_argument("--seed", type=int, default=0)
    _device_arg(p)


@command("attribute", "attribute a model's components on a task (IPG or a baseline)", _attribute_args)
def cmd_attribute(args: argparse.Namespace) -> None:
    from ipg.attribution.methods import MethodSpec, run_spec
    from ipg.attribution.table import write_attribution
    from ipg.models.load import load_model
    from ipg.tasks.prepare import prepare_task
    from ipg.study.trajectories import read_trajectories, trajectories_for_prompts

    entry = {"kind": args.method}
    if args.method == "ipg":
        entry.update(reward=args.reward, **({} if args.m is None else {"m": args.m}))
    elif args.method == "contrastive":
        entry.update(reward=args.reward)
    method = MethodSpec.parse(entry)  # bad options: one line before loading anything
    sampling = _sampling(args)
    model_dir, chat = resolve_model_dir(args.model)
    model, tokenizer = load_model(model_dir, device=args.device)
    if args.trajectories:
        trajectories = read_trajectories(args.trajectories)
    else:
        prepared = prepare_task(args.task, args.n_prompts, 1, args.seed, {})
        prepared = prepared[prepared["split"] == "attribution"]
        trajectories, _ = trajectories_for_prompts(
            model, tokenizer, prepared, args.task, chat, sampling.samples_per_prompt,
            sampling.sampler(args.seed))
    sae = None
    if args.granularity == "sae":
        from ipg.core.devices import model_device
        from ipg.sae import load_sae
        from ipg.sae.run import sae_dirs

        if not args.sae:
            raise IPGError("granularity 'sae' needs --sae (a folder of trained SAEs, e.g. results/sae/organism)")
        sae = [load_sae(d, device=model_device(model)) for d in sae_dirs(args.sae)]
    att = run_spec(model, trajectories, args.granularity, method, sae=sae, progress=True)
    top = att.scores.sort_values("score", ascending=False).head(args.top)
    print(top[["unit", "score", "ci_lo", "ci_hi"]].to_string(index=False))
    keys = ("completeness_residual", "n_prompts", "n_prompts_nonzero_advantage", "wall_seconds")
    print(json.dumps({k: att.metrics[k] for k in keys if k in att.metrics}, indent=1, default=str))
    if args.out:
        write_attribution(att, args.out, str(Path(args.out).with_suffix(".json")))


for _name, _help, _add_args, _func in TOOL_COMMANDS:  # ui, check, bench (ipg.cli.tools)
    command(_name, _help, _add_args)(_func)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="ipg", description="Integrated Policy Gradient: attribute and steer reasoning models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=_HelpFormatter)
        add_args(p)
        _fill_help(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    set_offline_env()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except IPGError as err:
        print(f"ipg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outputs are written atomically (temp file + rename): none is partial
        print(f"ipg: interrupted ({args.command}); no output file is left half-written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
