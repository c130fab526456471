"""The figures of inspect, experiment and train (its loss.png, drawn in grader/training/report.py):
matplotlib (Agg) PNGs with titles, axis labels and units, written atomically (a temporary file, then
os.replace). With few points they draw markers, not lines that would suggest values in between."""

import math
import os
from pathlib import Path

FEW = 6  # fewer points than this: markers only


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> Path:
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def token_label(text: str) -> str:
    """A token as a tick label: whitespace made visible."""
    return text.replace("\n", "\\n").replace(" ", "·").replace("\t", "\\t") or "''"


def layer_colors(n):
    plt = pyplot()
    cmap = plt.get_cmap("viridis")
    return [cmap(0.1 + 0.8 * i / max(1, n - 1)) for i in range(n)]


def line(ax, xs, ys, **kw):
    """A series with gaps for missing values; markers only when there are few points."""
    pts = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        return
    xs, ys = zip(*pts)
    ax.plot(xs, ys, "o" if len(xs) < FEW else "o-", markersize=4, linewidth=1.2, **kw)


# --- inspect ------------------------------------------------------------------------------------------------


def attention_grid(weights, tokens, path, title) -> Path:
    """weights[layer][head]: (T, T) arrays (query rows, key columns); the invisible future left blank."""
    import numpy as np

    plt = pyplot()
    n_layer, n_head = len(weights), max(len(w) for w in weights)
    T = len(tokens)
    cell = 2.3 if T <= 16 else 3.2
    fig, axes = plt.subplots(n_layer, n_head, figsize=(1.2 + cell * n_head, 1.2 + cell * n_layer), squeeze=False,
                             dpi=100)
    labels = [token_label(t) for t in tokens]
    step = max(1, math.ceil(T / 40))
    ticks = list(range(0, T, step))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    image = None
    for i in range(n_layer):
        for j in range(n_head):
            ax = axes[i][j]
            if j >= len(weights[i]):
                ax.axis("off")
                continue
            w = np.asarray(weights[i][j], dtype=float)
            future = np.triu(np.ones_like(w, dtype=bool), k=1 + w.shape[1] - w.shape[0])
            image = ax.imshow(np.ma.masked_where(future, w), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"layer {i}, head {j}", fontsize=9)
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            small = 8 if T <= 16 else 6
            ax.set_xticklabels([labels[t] for t in ticks] if i == n_layer - 1 else [], fontsize=small, rotation=90)
            ax.set_yticklabels([labels[t] for t in ticks] if j == 0 else [], fontsize=small)
            if i == n_layer - 1:
                ax.set_xlabel("key (the token attended to)", fontsize=8)
            if j == 0:
                ax.set_ylabel("query (the token attending)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 0.96))
    if image is not None:
        bar = fig.add_axes((0.88, 0.15, 0.02, 0.7))
        fig.colorbar(image, cax=bar).set_label("attention weight (probability); grey: the future, masked", fontsize=8)
    return save(fig, path)


def layer_names(stats) -> list[str]:
    return [f"layer {name.rsplit('.', 1)[-1]}" for name in stats["layers"]]


def training_stats(stats, path, title) -> Path:
    """Four panels per layer over the steps: activation mean and std, gradient norm, update-to-data ratio."""
    plt = pyplot()
    records = stats["records"]
    names = layer_names(stats)
    colors = layer_colors(len(names))
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), dpi=100, sharex=True)  # one step axis for all four
    panels = [
        (axes[0][0], "act_mean", "mean of each block's output", "activation mean"),
        (axes[0][1], "act_std", "std of each block's output (the residual stream)", "activation std"),
        (axes[1][0], "grad_norm", "gradient norm of each block's parameters (before clipping)", "L2 norm of the gradient"),
        (axes[1][1], "update_log10", "update-to-data ratio: log10(std(update) / std(weight))", "log10 ratio"),
    ]
    for ax, key, panel_title, ylabel in panels:
        for k, (name, color) in enumerate(zip(names, colors)):
            ys = [r[key][k] if r.get(key) is not None and k < len(r[key]) else None for r in records]
            line(ax, steps, ys, color=color, label=name)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[1][0].set_yscale("log")
    guide = axes[1][1]
    guide.axhline(-3, color="black", linestyle="--", linewidth=0.9, label="1e-3 (a common rule of thumb)")
    guide.set_ylim(min(-4.5, guide.get_ylim()[0]), max(-0.5, guide.get_ylim()[1]))
    axes[0][1].legend(fontsize=8)
    guide.legend(fontsize=8)
    if len(steps) < 3:
        fig.text(0.5, 0.01, f"only {len(steps)} evaluation(s) recorded: train longer or with a smaller --eval-interval",
                 ha="center", fontsize=9, color="tab:red")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return save(fig, path)


def histograms(stats, path, title) -> Path:
    """The activation and gradient histograms of the latest evaluation, one line per layer (density)."""
    plt = pyplot()
    hist = stats["histograms"]
    names = layer_names(stats)
    colors = layer_colors(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    for ax, key, what, unit in ((axes[0], "activations", "activations: each block's output", "activation value"),
                                (axes[1], "gradients", "gradients of each block's parameters", "gradient value")):
        h = hist.get(key)
        if not h:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        limit, bins = h["limit"], h["bins"]
        width = 2 * limit / bins
        centers = [-limit + width * (i + 0.5) for i in range(bins)]
        for name, color, counts in zip(names, colors, h["counts"]):
            if counts is None:
                continue
            total = sum(counts) or 1
            density = [c / (total * width) if c else float("nan") for c in counts]  # empty bins: a gap (log scale)
            ax.plot(centers, density, color=color, linewidth=1.2, label=name)
        ax.set_title(f"{what}\n(range: the {h['quantile'] * 100:g}th percentile of |value| over the layers)", fontsize=9)
        ax.set_xlabel(unit)
        ax.set_yscale("log")  # the tails are where trouble shows
        ax.set_ylabel("density (fraction per unit, log scale)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return save(fig, path)


# --- experiment --------------------------------------------------------------------------------------------


def experiment(runs, path, title, floor=None) -> Path:
    """Every run's validation loss over the steps on one plot. runs: [(label, [(step, val_loss)])]."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=100)
    colors = layer_colors(len(runs)) if len(runs) > 1 else ["tab:red"]
    for (label, points), color in zip(runs, colors):
        if points:
            xs, ys = zip(*points)
            line(ax, xs, ys, color=color, label=label)
    if floor is not None:
        ax.axhline(floor, color="black", linestyle="--", linewidth=0.8, label=f"best possible ({floor:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (cross-entropy, nats per token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return save(fig, path)
