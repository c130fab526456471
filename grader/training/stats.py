"""Training statistics (`python -m grader train --stats`): what each layer does while the model learns.

At every evaluation (every --eval-interval steps) `record(trainer)` adds, per layer (each block
transformer.h.<i>):

    act_mean, act_std   the mean and std of the block's output (the residual stream after it), from a forward
                        pass on one fixed training batch (the same batch at every evaluation)
    grad_norm           the L2 norm of the gradient of the block's parameters, from a backward pass on that
                        batch (before any clipping)
    update_log10        log10(std(update) / std(weight)) of the optimizer step that follows, averaged over the
                        block's weight matrices (Karpathy's update-to-data ratio; about -3 is healthy; None at the
                        last evaluation, after which no step follows)

and keeps the histograms of the activations and gradients of the latest evaluation. They go into
metrics.json under "stats"; `python -m grader inspect RUN` plots them.

The measurement leaves no trace on the training: its batch comes from its own generator, the RNG
states and the gradients are restored afterwards, and the optimizer step it watches is only read.
"""

import math
import re

from grader.training.runtime import rng_kept

LAYER = re.compile(r"(?:^|\.)h\.(\d+)$")
BINS = 60
PROBE_SEQUENCES = 8  # sequences in the measuring batch (at most the batch size)
QUANTILE = 0.999  # the histograms cover the values up to this quantile of |value|


def blocks(model) -> list[tuple[str, object]]:
    """(qualified name, module) of every transformer block, in order."""
    found = [(name, m) for name, m in model.named_modules() if LAYER.search(name)]
    return sorted(found, key=lambda item: int(LAYER.search(item[0]).group(1)))


def record(trainer) -> None:
    """Measure the model at trainer.step and watch the next optimizer step; add it to trainer.metrics["stats"]."""
    torch = trainer.torch
    raw = trainer.raw
    layers = blocks(raw)
    if not layers:
        return
    stats = trainer.metrics.setdefault("stats", dict(layers=[name for name, _ in layers], records=[], histograms=None))
    entry = dict(step=trainer.step, act_mean=[], act_std=[], grad_norm=[], update_log10=None)
    activations, gradients = probe(trainer, layers, torch)
    for (name, module), act in zip(layers, activations):
        entry["act_mean"].append(_float(act.mean()) if act is not None else None)
        entry["act_std"].append(_float(act.std()) if act is not None else None)
    for grads in gradients:
        entry["grad_norm"].append(_float(torch.cat([g.flatten() for g in grads]).norm()) if grads else None)
    stats["records"] = [r for r in stats["records"] if r["step"] != trainer.step] + [entry]
    stats["histograms"] = dict(
        step=trainer.step,
        activations=histograms([a.flatten() if a is not None else None for a in activations], torch),
        gradients=histograms([torch.cat([g.flatten() for g in grads]) if grads else None for grads in gradients], torch),
    )
    if trainer.step < trainer.s.max_steps:
        watch_next_update(trainer.optimizer, layers, entry, torch)


def _float(t) -> float | None:
    value = float(t)
    return value if math.isfinite(value) else None


def probe(trainer, layers, torch):
    """One forward and backward pass on a fixed training batch: each block's output and its parameters' gradients."""
    model, raw, s = trainer.sample_model, trainer.raw, trainer.s
    B = min(s.batch_size, PROBE_SEQUENCES)
    x, y = trainer.parts.get_batch(trainer.run.corpus.train, B, trainer.run.config.block_size,
                                   generator=torch.Generator().manual_seed(s.seed + 7), device=trainer.device)
    outputs = [None] * len(layers)

    def keep(i):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            outputs[i] = out.detach().float()
        return hook

    params = list(raw.parameters())
    saved_grads = [p.grad for p in params]
    was_training = raw.training
    handles = [module.register_forward_hook(keep(i)) for i, (_, module) in enumerate(layers)]
    try:
        for p in params:
            p.grad = None
        raw.train()
        with rng_kept(torch, trainer.device):  # the probe's dropout takes nothing from the training's random numbers
            _, loss = model(x, y)
            loss.backward()
        gradients = []
        for name, _ in layers:
            grads = [p.grad.detach().float() for n, p in raw.named_parameters() if n.startswith(name + ".")
                     and p.grad is not None]
            gradients.append(grads)
    finally:
        for handle in handles:
            handle.remove()
        for p, g in zip(params, saved_grads):
            p.grad = g
        raw.train(was_training)
    return outputs, gradients


def histograms(values, torch) -> dict | None:
    """Counts of each layer's values in BINS bins on one common symmetric range (so layers compare)."""
    present = [v for v in values if v is not None and v.numel()]
    if not present:
        return None
    limit = 0.0
    for v in present:
        a = v.abs()
        if a.numel() > 1_000_000:  # quantile's input limit; a strided sample is as good for a range
            a = a[:: a.numel() // 1_000_000 + 1]
        limit = max(limit, float(torch.quantile(a, QUANTILE)))
    limit = limit if limit > 0 and math.isfinite(limit) else 1.0
    counts = []
    for v in values:
        if v is None or not v.numel():
            counts.append(None)
            continue
        v = v[v.isfinite()].cpu()
        counts.append([int(c) for c in torch.histc(v, bins=BINS, min=-limit, max=limit)])
    return dict(limit=limit, bins=BINS, counts=counts, quantile=QUANTILE)


def watch_next_update(optimizer, layers, entry, torch) -> None:
    """On the next optimizer step: per layer, the mean of log10(std(update) / std(weight)) over its matrices."""
    if not hasattr(optimizer, "register_step_pre_hook"):
        return
    watched = [[p for p in module.parameters() if p.dim() >= 2] for _, module in layers]
    before = {}
    handles = []

    def pre(opt, args, kwargs):
        for group in watched:
            for p in group:
                before[id(p)] = p.detach().clone()

    def post(opt, args, kwargs):
        for handle in handles:
            handle.remove()
        result = []
        for group in watched:
            logs = []
            for p in group:
                old = before.get(id(p))
                if old is None:
                    continue
                update_std, weight_std = float((p.detach() - old).float().std()), float(old.float().std())
                if update_std > 0 and weight_std > 0 and math.isfinite(update_std):
                    logs.append(math.log10(update_std / weight_std))
            result.append(sum(logs) / len(logs) if logs else None)
        entry["update_log10"] = result
        before.clear()

    handles.append(optimizer.register_step_pre_hook(pre))
    handles.append(optimizer.register_step_post_hook(post))
