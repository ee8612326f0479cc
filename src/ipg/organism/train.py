"""Train the organism (a tiny Qwen2) from scratch on synthetic arithmetic chains of thought.

The loop evaluates held-out checkpoints as it goes (greedy and temperature-1 sampled
accuracy, generated length) and keeps the one whose *sampled* accuracy is closest to a
target inside a band, with greedy clearly above sampled. A converged model is too good
(>95% sampled): outcome advantages would be almost all zero. The same loop fine-tunes the
distilled organism from a selected checkpoint on longer, self-checking traces.

Writes to out_dir: config.json, model.safetensors, generation_config.json, tokenizer files,
training_curve.csv (step, loss, and at eval steps sampled_acc, greedy_acc, mean_len, std_len)
and metrics.json.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from ipg.organism.config import OrganismConfig
from ipg.organism.evaluate import EvalResult, evaluate
from ipg.organism.tokenizer import build_tokenizer
from ipg.organism.traces import max_completion_tokens, sample_problems, trace_stream


def new_model(cfg: OrganismConfig, vocab_size: int, tok: Any) -> Qwen2ForCausalLM:
    mc = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=None,  # like Qwen2: sequences start with the question itself
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return Qwen2ForCausalLM(mc)


def make_batch(pairs: list[tuple[str, str]], tok: Any) -> dict[str, torch.Tensor]:
    """Right-padded [batch, seq] ids; the loss covers the completion and <eos> only."""
    q_ids = tok([q for q, _ in pairs])["input_ids"]  # no special tokens are added
    c_ids = tok([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    seqs = [q + c + [tok.eos_token_id] for q, c in zip(q_ids, c_ids)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for i, (q, s) in enumerate(zip(q_ids, seqs)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, len(q) : len(s)] = ids[i, len(q) : len(s)]
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _lr_at(step: int, cfg: OrganismConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _score(r: EvalResult, cfg: OrganismConfig) -> tuple[bool, float]:
    """(in band and greedy clearly better, distance to target): lower is better after not."""
    if math.isnan(r.sampled_acc):
        return False, math.inf
    ok = cfg.band_lo <= r.sampled_acc <= cfg.band_hi and r.greedy_acc >= r.sampled_acc + cfg.min_greedy_gap
    return ok, abs(r.sampled_acc - cfg.target_sampled_acc)


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x  # JSON has no NaN


def train(
    out_dir: Path, cfg: OrganismConfig, init_dir: Path | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train (or fine-tune from init_dir), select a checkpoint, write it to out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tok = build_tokenizer()
    if init_dir is None:
        model = new_model(cfg, len(tok), tok)
    else:
        model = Qwen2ForCausalLM.from_pretrained(init_dir, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    stream = trace_stream(cfg.seed, cfg.traces)
    val = sample_problems(cfg.n_eval, cfg.seed, "val", cfg.traces)
    max_new = max_completion_tokens(cfg.traces)

    curve: list[dict[str, Any]] = []
    best: tuple[tuple[bool, float], int, EvalResult, dict[str, torch.Tensor]] | None = None
    above, t0, c0, eval_s = 0, time.perf_counter(), time.process_time(), 0.0
    for step in range(1, cfg.steps + 1):
        batch = make_batch(list(islice(stream, cfg.batch_size)), tok)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step - 1, cfg)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        row: dict[str, Any] = {"step": step, "loss": loss.item()}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            te = time.perf_counter()
            r = evaluate(model, tok, val, max_new, seed=cfg.seed + step,
                         sample_from_greedy=cfg.band_lo + cfg.min_greedy_gap if cfg.skip_early_sampling else 0.0)
            eval_s += time.perf_counter() - te
            row |= {"sampled_acc": r.sampled_acc, "greedy_acc": r.greedy_acc, "mean_len": r.mean_len, "std_len": r.std_len}
            ok, dist = _score(r, cfg)
            key = (not ok, dist)
            if best is None or key < best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (key, step, r, state)
            log(f"step {step} loss {loss.item():.3f} sampled {r.sampled_acc:.3f} greedy {r.greedy_acc:.3f} "
                f"len {r.mean_len:.1f}+-{r.std_len:.1f} ({time.perf_counter() - t0:.0f}s, cpu {time.process_time() - c0:.0f}s)")
            above = above + 1 if r.sampled_acc > cfg.target_sampled_acc + cfg.stop_margin else 0
        curve.append(row)
        if above >= cfg.stop_after_above and best is not None and not best[0][0]:
            break  # well past the target, and a qualifying checkpoint is kept
    train_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    assert best is not None  # the last step always evaluates
    (not_ok, _), sel_step, sel, state = best
    model.load_state_dict(state)
    # an unbiased measure of the selected checkpoint: questions that played no part in selection
    test = sample_problems(cfg.n_heldout, cfg.seed + 1, "test", cfg.traces)
    held = evaluate(model, tok, test, max_new, seed=cfg.seed + 1)
    model.generation_config.update(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    with open(out_dir / "training_curve.csv", "w", newline="") as f:
        cols = ["step", "loss", "sampled_acc", "greedy_acc", "mean_len", "std_len"]
        w = csv.DictWriter(f, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(curve)
    metrics = {
        "train_seconds": round(train_s, 1),
        "eval_seconds": round(eval_s, 1),
        "cpu_seconds": round(cpu_s, 1),  # process CPU time: on a busy machine, wall/threads
        "steps_run": curve[-1]["step"],
        "selected_step": sel_step,
        "selected_in_band": not not_ok,
        # the selected checkpoint on held-out test-split questions (n_heldout of them)
        "sampled_acc": held.sampled_acc,  # never NaN: evaluate() samples unconditionally here
        "greedy_acc": held.greedy_acc,
        "mean_len": held.mean_len,
        "std_len": held.std_len,
        "greedy_mean_len": held.greedy_mean_len,
        # the same on the validation questions that selected it (n_eval of them)
        "selection": {k: _finite(v) for k, v in asdict(sel).items()},
        "n_params": sum(p.numel() for p in model.parameters()),
        "init_dir": str(init_dir) if init_dir else None,
        "architecture": {k: getattr(model.config, k) for k in (
            "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size")},
        "config": asdict(cfg),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
