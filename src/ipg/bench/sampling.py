"""`ipg bench sampling`: throughput of the batched KV-cache sampler, measured side by side.

On the same prompts of each model, in one run (after a short warm-up, rounds A, B, C /
C, B, A, ...; each ratio is the median over rounds of the paired ratio, by the wall clock and
by CPU (process) time; only ratios are reported, the CPU is shared):
  1. batched:    ipg.core.sampling.sample_trajectories, all P prompts in one batch, G samples each
                 (each prompt encoded once, its KV cache shared by its G rows, finished rows
                 dropped)
  2. unbatched:  the same sampler, one trajectory per call (prompts_per_batch=1, G=1), P x G calls
  3. hf:         transformers `model.generate(do_sample=True, top_k=0, top_p=1.0,
                 temperature=T, max_new_tokens=N, num_return_sequences=G)`, the P prompts
                 left-padded in one batch, otherwise default settings
Rows: trajectories/s and tokens/s ratios batched / unbatched (target >= 5) and batched / hf;
the fraction of computed row-steps that produce a kept token, with finished rows dropped
(the sampler) and without (every row runs until the batch's longest one ends, as in hf,
whose own fraction is reported too); and a correctness check: the log-probs the sampler
stores for a token sequence are the same whether the sequence is produced in the batch or
alone (the other path replays the same tokens through the same sampler code, see
`forced_tokens`), max |difference| in nats (target <= 1e-4).

Models: random Qwen2s by name (random-qwen2-tiny, random-qwen2-medium; a random model almost
never emits its end-of-sequence token, so k otherwise unused ids are declared stop tokens,
k / vocab = 2 / max_new_tokens: lengths about geometric with mean ~N/2, as in a real model),
or a model folder / built model name (organism: its own task's prompts; its own EOS).
"""
from __future__ import annotations

import math
import random
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence
from unittest import mock

import pandas as pd
import torch

from ipg.bench.workload import RANDOM_MODELS, load_average
from ipg.errors import IPGError

COLUMNS = ["bench", "variant", "model", "shapes", "threads", "value", "unit", "target",
           "meets_target", "load_avg"]  # load_avg: 1-minute load average when the row was measured
QUICK_MODELS = ["random-qwen2-tiny"]
DEFAULT_MODELS = ["random-qwen2-tiny", "organism"]  # organism: only where it is built
DEFAULT_THREADS = 1  # decoding a small model is latency-bound; threads oversubscribe a shared CPU


@dataclass(frozen=True)
class Profile:
    prompts: int = 8  # P
    samples: int = 8  # G
    max_new_tokens: int = 64
    temperature: float = 1.0
    reps: int = 3


FULL = Profile()
QUICK = Profile(prompts=4, samples=4, max_new_tokens=24, reps=1)


def meets(value: float, target: str) -> bool | None:
    """'>= 5', '<= 1.05', '< 5' -> whether value meets it (None: no target or not finite)."""
    match = re.fullmatch(r"\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*", target or "")
    if not match or not math.isfinite(value):
        return None
    op, bound = match.group(1), float(match.group(2))
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound, ">": value > bound}[op]


def default_log(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


# -- models and prompts ----------------------------------------------------------------------

@dataclass
class GenModel:
    model: torch.nn.Module
    tokenizer: object
    label: str
    prompts: list[str]  # rendered prompts
    stop_ids: list[int]  # every id that ends a trajectory (sampler and hf alike)


def arithmetic_prompts(n: int, seed: int = 0) -> list[str]:
    """n short prompts of varying length ('Q 3+5+1; '), deterministic."""
    rng = random.Random(seed)
    return ["Q " + "+".join(str(rng.randint(1, 9)) for _ in range(rng.randint(2, 8))) + "; "
            for _ in range(n)]


def gen_model(spec: str, n_prompts: int, max_new_tokens: int, results_dir: str = "results",
              seed: int = 0) -> GenModel:
    """A frozen model, its tokenizer, n rendered prompts and its stop ids."""
    from ipg.core.sampling import eos_token_ids

    if spec in RANDOM_MODELS:
        from ipg.models.tiny import tiny_random_model

        model, tok = tiny_random_model("qwen2", seed=0, **RANDOM_MODELS[spec])
        vocab = model.config.vocab_size
        k = max(1, round(vocab * 2 / max_new_tokens))
        if vocab - k < len(tok):
            raise IPGError(f"{spec}: vocab {vocab} too small for {k} synthetic stop ids")
        model.generation_config.eos_token_id = [tok.eos_token_id] + list(range(vocab - k, vocab))
        return GenModel(model, tok, spec, arithmetic_prompts(n_prompts, seed),
                        eos_token_ids(model, tok))
    import json

    from ipg.models import MODELS
    from ipg.models.load import load_model, render_prompt

    path = Path(spec)
    if not path.exists():
        path = Path(results_dir) / "models" / spec
    if not path.exists():
        raise IPGError(f"bench model '{spec}' is neither a folder, a built model under "
                       f"{results_dir}/models/, nor one of {', '.join(RANDOM_MODELS)}")
    model, tok = load_model(path)
    card = path / "model_card.json"
    label = json.loads(card.read_text()).get("name", path.name) if card.exists() else path.name
    if label.startswith("organism"):
        from ipg.tasks.prepare import prepare_task

        frame = prepare_task("organism_arith", n_prompts, 1, seed, {})
        questions = list(frame.loc[frame["split"] == "attribution", "prompt"])[:n_prompts]
        chat = False
    else:
        questions = arithmetic_prompts(n_prompts, seed)
        chat = MODELS.get(label).chat if label in MODELS else bool(tok.chat_template)
    prompts = [render_prompt(tok, q, chat) for q in questions]
    return GenModel(model.requires_grad_(False).eval(), tok, label, prompts,
                    eos_token_ids(model, tok))


def resolve_models(models: Sequence[str] | None, quick: bool, results_dir: str,
                   log: Callable[[str], None]) -> list[str]:
    """The models to bench; the default organism only where it is built."""
    if models:
        return list(models)
    if quick:
        return list(QUICK_MODELS)
    out = []
    for spec in DEFAULT_MODELS:
        if spec in RANDOM_MODELS or Path(spec).exists() or (Path(results_dir) / "models" / spec).exists():
            out.append(spec)
        else:
            log(f"(skipping {spec}: not built under {results_dir}/models)")
    return out


# -- the three samplers --------------------------------------------------------------------

def sampler_batched(gm: GenModel, p: Profile, seed: int = 0):
    """All prompts in one batch, G samples each (the study's sampler)."""
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    cfg = SamplingConfig(p.temperature, p.max_new_tokens, len(gm.prompts), seed)
    return sample_trajectories(gm.model, gm.tokenizer, gm.prompts, p.samples, cfg, progress=False)[0]


def sampler_unbatched(gm: GenModel, p: Profile, seed: int = 0):
    """The same sampler, one trajectory per call (prompts_per_batch=1, G=1)."""
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    out = []
    for i, prompt in enumerate(gm.prompts):
        for g in range(p.samples):
            cfg = SamplingConfig(p.temperature, p.max_new_tokens, 1, seed + i * p.samples + g)
            out += sample_trajectories(gm.model, gm.tokenizer, [prompt], 1, cfg, progress=False)[0]
    return out


def hf_generate(gm: GenModel, p: Profile, seed: int = 0) -> list[list[int]]:
    """HF generate with pure sampling at temperature T; generated ids up to the first stop id."""
    tok = gm.tokenizer
    enc = tok(gm.prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = gm.model.generate(**enc, do_sample=True, top_k=0, top_p=1.0,
                                temperature=p.temperature, max_new_tokens=p.max_new_tokens,
                                num_return_sequences=p.samples, eos_token_id=gm.stop_ids,
                                pad_token_id=tok.pad_token_id)
    gen, stops, seqs = out[:, enc["input_ids"].shape[1]:].tolist(), set(gm.stop_ids), []
    for row in gen:
        end = next((j + 1 for j, t in enumerate(row) if t in stops), len(row))
        seqs.append(row[:end])
    return seqs


# -- replaying given tokens through the sampler -------------------------------------------------

@contextmanager
def forced_tokens(sequences: Sequence[Sequence[int]]) -> Iterator[None]:
    """Inside the block, the sampler's torch.multinomial returns these tokens instead of drawing.

    For ONE sampler batch whose rows (prompt-major, sample-minor) will produce `sequences`:
    at step s the live rows are those with len(seq) > s, in order (the sampler drops a row
    after its stop token and keeps the order). Everything else is the sampler's own code, so
    the log-probs it stores are those of the given tokens on that batch layout.
    """
    step = [0]

    def multinomial(probs, num_samples=1, replacement=False, *, generator=None, out=None):
        s = step[0]
        step[0] += 1
        alive = [seq[s] for seq in sequences if len(seq) > s]
        if len(alive) != probs.shape[0]:
            raise IPGError(f"forced tokens: {len(alive)} live sequences at step {s}, the sampler "
                           f"has {probs.shape[0]} rows")
        return torch.tensor(alive, dtype=torch.long, device=probs.device)[:, None]

    with mock.patch.object(torch, "multinomial", multinomial):
        yield


def replay_logprobs(gm: GenModel, p: Profile, sequences: Sequence[Sequence[int]],
                    batched: bool) -> list[float]:
    """The sampler's log-probs of `sequences` (P x G, prompt-major) in one batch or one at a time."""
    from ipg.core.sampling import SamplingConfig, sample_trajectories

    g = p.samples
    if batched:
        cfg = SamplingConfig(p.temperature, p.max_new_tokens, len(gm.prompts), 0)
        with forced_tokens(sequences):
            trajs = sample_trajectories(gm.model, gm.tokenizer, gm.prompts, g, cfg, progress=False)[0]
    else:
        cfg = SamplingConfig(p.temperature, p.max_new_tokens, 1, 0)
        trajs = []
        for k, seq in enumerate(sequences):
            with forced_tokens([seq]):
                trajs += sample_trajectories(gm.model, gm.tokenizer, [gm.prompts[k // g]], 1, cfg,
                                             progress=False)[0]
    got = [list(t.gen_ids) for t in trajs]
    if got != [list(s) for s in sequences]:
        raise IPGError("forced tokens were not reproduced by the sampler")
    return [t.logprob for t in trajs]


def logprob_agreement(gm: GenModel, p: Profile) -> tuple[float, float]:
    """Max |log-prob difference| (nats): batched samples replayed alone, and unbatched samples
    replayed in one batch."""
    batched = sampler_batched(gm, p)
    alone = replay_logprobs(gm, p, [t.gen_ids for t in batched], batched=False)
    d1 = max(abs(a - t.logprob) for a, t in zip(alone, batched))
    unbatched = sampler_unbatched(gm, p)  # prompt-major, sample-minor like the batch
    together = replay_logprobs(gm, p, [t.gen_ids for t in unbatched], batched=True)
    d2 = max(abs(a - t.logprob) for a, t in zip(together, unbatched))
    return d1, d2


# -- the bench -----------------------------------------------------------------------------

class Rounds:
    """Wall-clock and CPU (process) seconds of each callable over `reps` rounds; the order
    alternates A, B, C / C, B, A so slow drifts of the machine's load cancel. Ratios are
    medians over rounds of the paired ratio (the two runs of a pair are adjacent in time).
    CPU time leaves out the time the process waits for a core (robust to a shared CPU's
    load; one torch thread, so it is the work done)."""

    def __init__(self, fns: dict[str, Callable[[], object]], reps: int) -> None:
        import time

        self.wall: dict[str, list[float]] = {k: [] for k in fns}
        self.cpu: dict[str, list[float]] = {k: [] for k in fns}
        keys = list(fns)
        for r in range(reps):
            for key in (keys if r % 2 == 0 else keys[::-1]):
                w, c = time.perf_counter(), time.process_time()
                fns[key]()
                self.cpu[key].append(time.process_time() - c)
                self.wall[key].append(time.perf_counter() - w)

    def median(self, key: str, clock: str = "wall") -> float:
        import statistics

        return statistics.median(getattr(self, clock)[key])

    def ratio(self, a: str, b: str, clock: str = "wall") -> float:
        """median over rounds of time(a) / time(b)."""
        import statistics

        t = getattr(self, clock)
        return statistics.median(x / max(y, 1e-12) for x, y in zip(t[a], t[b]))


def useful_fractions(gm: GenModel, p: Profile) -> dict[str, float]:
    """Kept tokens / computed row-steps: the sampler (drops finished rows), the same batch
    without dropping (rows x the longest row), and hf generate (its padded output)."""
    from ipg.core.sampling import SamplingConfig, _sample_batch

    cfg = SamplingConfig(p.temperature, p.max_new_tokens, len(gm.prompts), 0)
    ids = [gm.tokenizer(q, add_special_tokens=False)["input_ids"] for q in gm.prompts]
    pad = gm.tokenizer.pad_token_id if gm.tokenizer.pad_token_id is not None else gm.stop_ids[0]
    gen = torch.Generator().manual_seed(0)
    tokens, _, _, steps, _ = _sample_batch(gm.model, ids, p.samples, cfg, gm.stop_ids, pad, gen)
    kept = sum(len(t) for t in tokens)
    hf = hf_generate(gm, p)
    return {"ipg sampler (drops finished rows)": kept / steps,
            "same batch without dropping": kept / (len(tokens) * max(len(t) for t in tokens)),
            "hf generate (keeps finished rows)": sum(len(s) for s in hf) / (len(hf) * max(len(s) for s in hf))}


def bench_model_rows(spec: str, profile: Profile, threads: int, log: Callable[[str], None],
                     results_dir: str = "results") -> list[dict]:
    p = profile
    gm = gen_model(spec, p.prompts, p.max_new_tokens, results_dir)
    rows: list[dict] = []
    lengths = [len(gm.tokenizer(q, add_special_tokens=False)["input_ids"]) for q in gm.prompts]
    shapes = (f"P={p.prompts} G={p.samples} prompt_len={min(lengths)}-{max(lengths)} "
              f"max_new={p.max_new_tokens} T={p.temperature:g}")

    def row(bench, variant, value, unit, target=""):
        rows.append(dict(bench=bench, variant=variant, model=gm.label, shapes=shapes,
                         threads=threads, value=float(value), unit=unit, target=target,
                         meets_target=meets(float(value), target), load_avg=load_average()))
        log(f"  {bench:<26} {variant:<40} {value:>10.4g} {unit} {target}")

    n_params = sum(x.numel() for x in gm.model.parameters())
    log(f"== sampling {gm.label}: {n_params / 1e6:.2f}M parameters, {threads} threads, {shapes}")
    counts: dict[str, int] = {}

    def run(key: str) -> Callable[[], None]:
        def fn() -> None:
            if key == "hf":
                counts[key] = sum(len(s) for s in hf_generate(gm, p))
            else:
                trajs = (sampler_batched if key == "batched" else sampler_unbatched)(gm, p)
                counts[key] = sum(len(t.gen_ids) for t in trajs)
        return fn

    # warm-up: one prompt, G=1, a few tokens, each path
    small = Profile(1, 1, 4, p.temperature, 1)
    warm = GenModel(gm.model, gm.tokenizer, gm.label, gm.prompts[:1], gm.stop_ids)
    sampler_batched(warm, small), sampler_unbatched(warm, small), hf_generate(warm, small)
    rounds = Rounds({k: run(k) for k in ("batched", "unbatched", "hf")}, p.reps)
    n_traj = p.prompts * p.samples
    for clock, note in (("wall", ""), ("cpu", " (CPU time)")):
        # trajectories/s ratio = inverse time ratio (same P x G); tokens/s also weighs the
        # tokens each run generated (the same in every round: fixed seeds)
        for other, name, target in (("unbatched", "unbatched", ">= 5"), ("hf", "hf generate", "")):
            traj = rounds.ratio(other, "batched", clock)
            row("trajectories_per_s_ratio", f"batched / {name}{note}", traj, "ratio", target)
            row("tokens_per_s_ratio", f"batched / {name}{note}",
                traj * counts["batched"] / counts[other], "ratio", target)
    for k in ("batched", "unbatched", "hf"):
        row("mean_generated_tokens", k, counts[k] / n_traj, "tokens per trajectory")
    for variant, frac in useful_fractions(gm, p).items():
        row("useful_step_fraction", variant, frac, "kept tokens / computed row-steps")
    d1, d2 = logprob_agreement(gm, p)
    row("logprob_agreement", "batched samples replayed alone", d1, "max |diff| nats", "<= 1e-4")
    row("logprob_agreement", "unbatched samples replayed in batch", d2, "max |diff| nats", "<= 1e-4")
    return rows


def run_bench(models: Sequence[str] | None = None, quick: bool = False,
              csv_path: str | Path | None = None, png_path: str | Path | None = None,
              threads: int | None = None, log: Callable[[str], None] | None = None,
              results_dir: str = "results", profile: Profile | None = None) -> pd.DataFrame:
    log = log or default_log
    threads = int(threads or DEFAULT_THREADS)
    torch.set_num_threads(threads)
    profile = profile or (QUICK if quick else FULL)
    specs = resolve_models(models, quick, results_dir, log)
    rows = [r for spec in specs for r in bench_model_rows(spec, profile, threads, log, results_dir)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(frame, csv_path)
    if png_path:
        plot_sampling(frame, png_path)
    return frame


def write_csv(frame: pd.DataFrame, csv_path: str | Path | None) -> None:
    if csv_path:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv_path, index=False)


def format_table(frame: pd.DataFrame) -> str:
    view = frame.assign(value=[f"{v:.4g}" for v in frame["value"]],
                        ok=frame["meets_target"].map({True: "yes", False: "NO"}).fillna(""))
    return view[["model", "bench", "variant", "value", "unit", "target", "ok"]].to_string(index=False)


def plot_sampling(frame: pd.DataFrame, path: str | Path) -> None:
    """(a) throughput ratios of the batched sampler (log scale, red: target);
    (b) kept tokens / computed row-steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    rat = frame[frame["bench"].isin(["trajectories_per_s_ratio", "tokens_per_s_ratio"])].copy()
    rat["label"] = rat["bench"].str.replace("_per_s_ratio", "/s") + ": " + rat["variant"]
    ax = axes[0]
    sns.barplot(data=rat, y="label", x="value", hue="model", ax=ax, orient="h")
    for i, label in enumerate(rat["label"].drop_duplicates()):
        target = rat.loc[rat["label"] == label, "target"].iloc[0]
        if isinstance(target, str) and target:
            bound = float(target.split()[-1])
            ax.plot([bound, bound], [i - 0.45, i + 0.45], color="crimson", lw=2.5)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set(xscale="log", xlabel="ratio (log scale; red bar: target; dashed: parity)", ylabel="",
           title="(a) Batched sampler throughput")
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    lo = min(0.5, float(rat["value"].min()) * 0.8)
    ticks = [t for t in (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100) if lo <= t <= rat["value"].max() * 1.5]
    ax.set_xlim(lo, max(rat["value"].max() * 1.3, 6))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8, title=None)
    use = frame[frame["bench"] == "useful_step_fraction"]
    ax = axes[1]
    sns.barplot(data=use, y="variant", x="value", hue="model", ax=ax, orient="h")
    ax.set(xlim=(0, 1.05), xlabel="kept tokens / computed row-steps", ylabel="",
           title="(b) Useful decoding steps")
    ax.legend(fontsize=8, title=None)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
