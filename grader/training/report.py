"""The files a run leaves besides its checkpoint: metrics.json and loss.png."""

import dataclasses
import json
import math
import os
from pathlib import Path


def write_json(data: dict, path) -> None:
    """Write data as JSON atomically (NaN and inf become null)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_finite(data), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def smooth(values, window):
    """Running mean over the last `window` values (shorter at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


FEW_STEPS = 30  # fewer training steps than this: markers, no running mean
FEW_EVALUATIONS = 6  # fewer evaluations than this: markers only


def plot_losses(metrics: dict, path, title: str = "", floor: float | None = None) -> None:
    """Training loss per step (faint, and smoothed) with the train/validation estimates at each evaluation."""
    from grader.inside import figures

    fig, ax = figures.pyplot().subplots(figsize=(8, 5), dpi=100)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.1)
    if metrics["train"]:
        steps = [s for s, _ in metrics["train"]]
        losses = [v for _, v in metrics["train"]]
        few = len(losses) < FEW_STEPS  # a marker per step, and no running mean that would invent a trend
        ax.plot(steps, losses, ".-" if few else "-", color="tab:blue", alpha=0.6 if few else 0.25, linewidth=0.8,
                label="training batch loss")
        if not few:
            ax.plot(steps, smooth(losses, max(1, len(losses) // 50)), color="tab:blue", linewidth=1.2,
                    label="training batch loss (running mean)")
    if metrics["eval"]:
        steps = [e["step"] for e in metrics["eval"]]
        style = "o" if len(steps) < FEW_EVALUATIONS else "o-"  # a few evaluations far apart: points, not a curve
        ax.plot(steps, [e["train_loss"] for e in metrics["eval"]], style, color="tab:green", label="train (estimate)")
        ax.plot(steps, [e["val_loss"] for e in metrics["eval"]], style, color="tab:red", label="validation (held-out 10 %)")
    if floor is not None:
        ax.axhline(floor, color="black", linestyle="--", linewidth=0.8, label=f"best possible ({floor:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    figures.save(fig, path)  # atomically


def write_reports(run, raw, metrics, tokens_per_step, device, autocast_dtype, step, last_saved, threads=None):
    """metrics.json (the run's settings, figures and losses) and loss.png, into the run's folder."""
    timing = metrics["timing"]
    train_time = timing["train_steps"]
    steps_here = len(metrics["train"])
    corpus, config = run.corpus, run.config
    summary = dict(
        preset=run.preset_name, impl=run.impl, data=corpus.description, tokenizer=corpus.tokenizer.kind,
        vocab_size=config.vocab_size, train_tokens=len(corpus.train), val_tokens=len(corpus.val),
        best_possible_loss=corpus.entropy,
        config=dataclasses.asdict(config), settings=dataclasses.asdict(run.settings),
        parameters=raw.num_params() if hasattr(raw, "num_params") else sum(p.numel() for p in raw.parameters()),
        device=device, dtype=str(autocast_dtype or "float32").replace("torch.", ""), threads=threads,
        world_size=run.dist.world_size, compile=run.args.compile,
        steps=step, tokens_per_step=tokens_per_step, checkpoint_step=last_saved,
        final=metrics["eval"][-1] if metrics["eval"] else None,
        tokens_per_second=(steps_here * tokens_per_step / timing["wall"]) if timing["wall"] else None,
        train_step_tokens_per_second=(steps_here * tokens_per_step / train_time) if train_time else None,
        overhead=((timing["wall"] - train_time) / train_time) if train_time else None,
        timing=timing, eval=metrics["eval"], train=metrics["train"],
    )
    if metrics.get("stats"):
        summary["stats"] = metrics["stats"]  # train --stats (grader/training/stats.py)
    write_json(summary, run.out / "metrics.json")
    plot_losses(metrics, run.out / "loss.png", title=f"{run.preset_name} ({run.impl}), {summary['parameters']:,} parameters",
                floor=corpus.entropy)
