"""The benchmark figure: memory vs T, chunk scaling, every ratio against its target, and the
fitted scaling exponents (time and memory in T, m, N, layers)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

RATIOS = {  # bench -> (label, better when)
    "overhead_vs_backprop": ("IPG / m plain fwd+bwd", "lower"),
    "captum_ratio": ("IPG / captum LIG", "lower"),
    "naive_speedup": ("naive loop / IPG", "higher"),
    "shared_prompt_speedup": ("positions all / generated", "higher"),
    "quadrature_cost": ("midpoint / GL seconds to <1% residual", "higher"),
    "flops_fraction": ("achieved / matmul FLOP/s", "higher"),
    "checkpoint_memory": ("layer checkpointing / not, peak memory", "lower"),
    "checkpoint_time": ("layer checkpointing / not, time", "lower"),
    "autocast_time": ("bf16 autocast / float32 time (CPU)", "lower"),
}


def plot_bench(frame: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, grid = plt.subplots(2, 2, figsize=(17, 11))
    axes = grid.ravel()

    def plain_ticks(ax, xs, log_y: bool = False) -> None:
        ax.set_xticks(xs, labels=[str(x) for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        if log_y:
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())

    # (a) peak memory vs generation length (log-log), fitted exponent in the legend
    mem = frame[frame["bench"] == "peak_memory"].copy()
    mem["method"] = mem["variant"].str.split(" ").str[0].map({"ipg": "IPG", "plain": "plain fwd+bwd"})
    exps = frame[frame["bench"] == "memory_exponent"]
    fit = {(r.model, r.variant): r.value for r in exps.itertuples()}
    mem["curve"] = [f"{r.model}, {r.method} (slope {fit.get((r.model, r.variant.split(' ')[0]), float('nan')):.2f})"
                    for r in mem.itertuples()]
    ax = axes[0]
    sns.lineplot(data=mem, x="gen_len", y="value", hue="curve", marker="o", ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="generated tokens per trajectory T",
           ylabel="peak RSS above start (MiB)", title="(a) Peak memory vs trajectory length")
    plain_ticks(ax, sorted(int(t) for t in mem["gen_len"].unique()), log_y=True)
    ax.legend(fontsize=8, title=None, loc="lower right")

    # (b) time vs path points per batch, relative to one point per batch
    ch = frame[frame["bench"] == "chunk_time"].copy()
    ch["chunk"] = ch["variant"].str.replace("chunk=", "").astype(int)
    ax = axes[1]
    sns.lineplot(data=ch, x="chunk", y="value", hue="model", marker="o", ax=ax)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set(xscale="log", xlabel="path points per batch (chunk)", ylabel="time / time at chunk = 1",
           title="(b) Path points on the batch dimension")
    plain_ticks(ax, sorted(int(c) for c in ch["chunk"].unique()))
    ax.legend(fontsize=8, title=None)

    # (c) every ratio against its target (log scale)
    rat = frame[frame["bench"].isin(RATIOS) & (frame["unit"] != "MiB above start")].copy()
    rat["label"] = [RATIOS[b][0] + (" (chunk=1)" if "one path point" in v else " (best chunk)" if "best" in v
                                    else f" ({v.split(' (')[0]})" if b == "flops_fraction"
                                    else f" ({v.split(':')[0]})" if b == "checkpoint_memory" else "")
                    for b, v in zip(rat["bench"], rat["variant"])]
    ax = axes[2]
    sns.barplot(data=rat, y="label", x="value", hue="model", ax=ax, orient="h")
    for i, label in enumerate(rat["label"].drop_duplicates()):
        target = rat.loc[rat["label"] == label, "target"].iloc[0]
        if target:
            bound = float(target.split()[-1])
            ax.plot([bound, bound], [i - 0.45, i + 0.45], color="crimson", lw=2.5,
                    label="target" if i == 0 else None)
    ax.set(xscale="log", xlabel="ratio (log scale; red bar: target)", ylabel="",
           title="(c) Ratios measured side by side")
    ax.legend(fontsize=8, title=None)

    # (d) fitted exponents of time and peak memory per doubled dimension
    exp = frame[(frame["bench"] == "time_exponent")
                | ((frame["bench"] == "memory_exponent") & frame["variant"].str.startswith("scaling"))].copy()
    ax = axes[3]
    if len(exp):
        exp["label"] = [("time in " if b == "time_exponent" else "memory in ") + v.removeprefix("scaling ")
                        for b, v in zip(exp["bench"], exp["variant"])]
        sns.barplot(data=exp, y="label", x="value", hue="model", ax=ax, orient="h")
        ax.legend(fontsize=8, title=None)
    for x, style in ((0, ":"), (1, "--")):
        ax.axvline(x, color="grey", ls=style, lw=1)
    ax.set(xlabel="fitted exponent (1: linear, 0: flat)", ylabel="",
           title="(d) Scaling as T, m, N, layers double")

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
