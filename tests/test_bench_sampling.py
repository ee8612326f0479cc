"""`ipg bench sampling|steering|workflow --quick`: every row is there with finite positive values
(no timing thresholds: the CI machine is shared), and the batched and one-at-a-time samplers
store the same log-probs for the same token sequences."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from ipg.bench.sampling import COLUMNS, meets

SAMPLING_ROWS = {
    (bench, f"batched / {other}{clock}")
    for bench in ("trajectories_per_s_ratio", "tokens_per_s_ratio")
    for other in ("unbatched", "hf generate") for clock in ("", " (CPU time)")
} | {
    ("mean_generated_tokens", "batched"),
    ("mean_generated_tokens", "unbatched"),
    ("mean_generated_tokens", "hf"),
    ("useful_step_fraction", "ipg sampler (drops finished rows)"),
    ("useful_step_fraction", "same batch without dropping"),
    ("useful_step_fraction", "hf generate (keeps finished rows)"),
    ("logprob_agreement", "batched samples replayed alone"),
    ("logprob_agreement", "unbatched samples replayed in batch"),
}
STEERING_BENCHES = {"steering_overhead", "steering_time_free", "steering_tokens_free",
                    "steering_time_per_token_free"}


def _run(suite: str, out, *extra: str) -> pd.DataFrame:
    from ipg.cli import main

    csv = out / f"{suite}.csv"
    assert main(["bench", suite, "--quick", "--csv", str(csv), *extra]) == 0
    frame = pd.read_csv(csv)
    assert list(frame.columns) == COLUMNS
    assert (frame["threads"] >= 1).all()
    assert frame["shapes"].str.len().gt(0).all()
    return frame


def _finite_positive(frame: pd.DataFrame, allow_zero: set[str] = frozenset()) -> None:
    for r in frame.itertuples():
        ok = math.isfinite(r.value) and (r.value >= 0 if r.bench in allow_zero else r.value > 0)
        assert ok, (r.bench, r.variant, r.value)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


def test_quick_sampling_bench_rows(out) -> None:
    png = out / "sampling.png"
    frame = _run("sampling", out, "--png", str(png))
    assert set(zip(frame["bench"], frame["variant"])) == SAMPLING_ROWS
    assert set(frame["model"]) == {"random-qwen2-tiny"}
    _finite_positive(frame, allow_zero={"logprob_agreement"})
    # the sampler drops finished rows: every computed row-step yields a kept token
    drop = frame.loc[frame["variant"] == "ipg sampler (drops finished rows)", "value"].iloc[0]
    assert drop == pytest.approx(1.0)
    assert (frame.loc[frame["bench"] == "useful_step_fraction", "value"] <= 1.0 + 1e-9).all()
    assert (frame.loc[frame["bench"] == "logprob_agreement", "value"] < 1e-4).all()
    assert png.is_file() and png.stat().st_size > 5_000


def test_quick_steering_bench_rows(out) -> None:
    frame = _run("steering", out)
    assert set(frame["bench"]) == STEERING_BENCHES
    _finite_positive(frame)
    assert frame.loc[frame["bench"] == "steering_overhead", "target"].iloc[0] == "<= 1.05"


def test_batched_and_unbatched_sampling_give_the_same_logprobs() -> None:
    """The same token sequences scored by the sampler in one left-padded batch (shared prompt
    cache, rows dropped as they finish) and one trajectory at a time: same log-probs."""
    import torch

    from ipg.bench.sampling import Profile, gen_model, logprob_agreement, replay_logprobs, sampler_batched

    torch.manual_seed(0)
    p = Profile(prompts=3, samples=3, max_new_tokens=16, reps=1)
    gm = gen_model("random-qwen2-tiny", p.prompts, p.max_new_tokens)
    lengths = {len(gm.tokenizer(q, add_special_tokens=False)["input_ids"]) for q in gm.prompts}
    assert len(lengths) > 1  # prompts of different lengths: the batch is left-padded
    trajs = sampler_batched(gm, p, seed=1)
    assert len({len(t.gen_ids) for t in trajs}) > 1  # rows finish at different steps
    alone = replay_logprobs(gm, p, [t.gen_ids for t in trajs], batched=False)
    together = replay_logprobs(gm, p, [t.gen_ids for t in trajs], batched=True)
    for t, a, b in zip(trajs, alone, together):
        assert a == pytest.approx(t.logprob, abs=1e-4)
        assert b == pytest.approx(t.logprob, abs=1e-4)
    d1, d2 = logprob_agreement(gm, p)
    assert d1 < 1e-4 and d2 < 1e-4


def test_workflow_bench_dry_runs_a_fresh_folder(tmp_path) -> None:
    from ipg.bench.workflow import TEST_CONFIG, run_bench

    frame = run_bench(directory=tmp_path, configfile=TEST_CONFIG, quick=True,
                      csv_path=tmp_path / "workflow.csv")
    assert list(frame.columns) == COLUMNS
    assert set(frame["bench"]) == {"dry_run_seconds", "dry_run_cpu_seconds", "import_seconds",
                                   "dry_run_over_import", "dry_run_jobs"}
    _finite_positive(frame)  # a fresh folder: the dry run lists the whole study (> 0 jobs)


def test_meets_parses_strict_targets() -> None:
    assert meets(4.0, "< 5") is True
    assert meets(5.0, "< 5") is False
    assert meets(6.0, ">= 5") is True
    assert meets(1.0, "") is None
