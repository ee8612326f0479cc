"""The public Python API: the few calls a notebook needs, on any supported Hugging Face causal LM
(ipg.models.architecture: Llama, Qwen2/3, Mistral, Gemma, Phi-3, GPT-2, GPT-NeoX) and its tokenizer.

    import ipg
    traj = ipg.sample(model, tok, ["2+2=", "3+5="], n_samples=8, max_new_tokens=32)
    att = ipg.attribute(model, traj, "neurons", reward=lambda row: float("4" in row.text))
    units = ipg.select_units(att, k=10)
    with ipg.steer(model, units, gamma=0.0):
        out = model.generate(...)

`sample` -> a trajectory table (one row per sampled completion: prompt_id, prompt_ids, gen_ids,
text, logprob, truncated, temperature, reward_length, and reward_accuracy when `answers` are
given); `attribute` -> an Attribution (.scores table, .per_prompt, .metrics with the
completeness residual); `select_units` -> unit ids; `steer` -> a context manager that scales
those units by gamma during any forward or generate.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ipg.errors import IPGError

if TYPE_CHECKING:
    import pandas as pd

    from ipg.attribution.table import Attribution


def sample(model: Any, tokenizer: Any, prompts: Sequence[str], n_samples: int = 4, *,
           max_new_tokens: int = 64, temperature: float = 1.0, seed: int = 0, chat: bool = False,
           answers: Sequence[str] | None = None, grader: str = "math-verify",
           prompts_per_batch: int = 8, progress: bool = False) -> pd.DataFrame:
    """Sample `n_samples` completions of every prompt (chat=True: in the tokenizer's chat
    template). With `answers` (one gold per prompt), each completion is graded by `grader`
    (ipg.tasks.grading.GRADERS) into reward_accuracy."""
    import pandas as pd

    from ipg.models.load import render_prompt
    from ipg.core.rewards import length_reward
    from ipg.core.sampling import SamplingConfig, sample_trajectories
    from ipg.tasks.grading import GRADERS

    if answers is not None and len(answers) != len(prompts):
        raise IPGError(f"answers: {len(answers)} given for {len(prompts)} prompts; give one per prompt")
    if grader not in GRADERS:
        raise IPGError(f"unknown grader {grader!r}; allowed: {', '.join(GRADERS)}")
    extract, grade, _ = GRADERS[grader]
    rendered = [render_prompt(tokenizer, p, chat) for p in prompts]
    cfg = SamplingConfig(temperature=temperature, max_new_tokens=max_new_tokens,
                         prompts_per_batch=prompts_per_batch, seed=seed)
    trajs, _ = sample_trajectories(model, tokenizer, rendered, n_samples, cfg, progress)
    rows = []
    for t in trajs:
        text = tokenizer.decode(t.gen_ids, skip_special_tokens=True)
        row = {"prompt_id": f"p{t.prompt_index}", "sample_id": t.sample_id,
               "prompt": rendered[t.prompt_index], "prompt_ids": t.prompt_ids, "gen_ids": t.gen_ids,
               "text": text, "logprob": t.logprob, "truncated": t.truncated,
               "temperature": temperature, "entropy": t.entropy,
               "reward_length": length_reward(t.gen_ids, t.truncated)}
        if answers is not None:
            gold = str(answers[t.prompt_index])
            pred = extract(text)
            row.update(answer=gold, pred=pred, reward_accuracy=float(pred is not None and grade(pred, gold)))
        rows.append(row)
    return pd.DataFrame(rows)


def attribute(model: Any, trajectories: pd.DataFrame, granularity: str = "neurons", *,
              method: str = "ipg", reward: "str | Callable[[Any], float]" = "accuracy",
              sae: Any = None, progress: bool = False, **params: Any) -> Attribution:
    """Scores of every unit of `granularity` (neurons | heads | layers | sae) by `method`
    (ipg, ig_likelihood, act, freq, gxa, contrastive, random; ipg.attribution.methods).

    reward: a registered name ("accuracy", "length": the table's reward_{name} column) or a
    callable row -> float applied to each trajectory row (it is recorded in metrics["reward"]).
    params: the method's settings (for ipg: IPGConfig keys such as m, baseline, layers,
    max_residual)."""
    from ipg.attribution.baseline_config import KEYS
    from ipg.attribution.methods import run_attribution

    frame, name = trajectories, reward
    if callable(reward):
        frame = trajectories.copy()  # the engine reads reward_{name}: the callable fills one on a copy
        frame["reward_accuracy"] = [float(reward(row)) for row in trajectories.itertuples(index=False)]
        name = f"callable:{getattr(reward, '__name__', type(reward).__name__)}"
        reward = "accuracy"
    elif f"reward_{reward}" not in trajectories.columns:
        raise IPGError(f"reward {reward!r}: the trajectory table has no column reward_{reward}; pass "
                       f"answers= to ipg.sample, reward='length', or a callable row -> float")
    if method in ("ipg",) or "reward" in KEYS.get(method, ()):
        params = {"reward": reward, **params}
    att = run_attribution(model, frame, granularity, {"kind": method, **params}, sae=sae, progress=progress)
    att.metrics["reward"] = name
    return att


def select_units(attribution: Attribution | pd.DataFrame, k: int, mode: str = "signed",
                 per_layer: bool = False) -> list[str]:
    """The k unit ids with the largest score (mode signed), smallest (bottom) or largest |score|
    (magnitude); per_layer: k from every layer."""
    from ipg.attribution.table import select_units as _select

    return _select(attribution, k, mode=mode, per_layer=per_layer)  # type: ignore[arg-type]


@contextmanager
def steer(model: Any, units: Sequence[str], gamma: float = 0.0, sae: Any = None) -> Iterator[Any]:
    """Within the block every listed unit's activation is multiplied by gamma (0: ablate, 2:
    amplify) in every forward of `model`, generate included."""
    from ipg.core.units import scale_units

    with scale_units(model, list(units), gamma, sae):
        yield model
