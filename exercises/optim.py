"""07 optim: AdamW written out, parameter groups, and the learning-rate schedule.

AdamW keeps two running averages per parameter, of the gradient g and of g²,
and steps along their ratio (t counts steps from 1):

    p  <- p - lr * wd * p                   decoupled weight decay (AdamW, not L2 in the gradient)
    m  <- beta1 * m + (1 - beta1) * g
    v  <- beta2 * v + (1 - beta2) * g²
    m̂  = m / (1 - beta1^t),   v̂ = v / (1 - beta2^t)      bias correction: m and v start at 0
    p  <- p - lr * m̂ / (sqrt(v̂) + eps)

Weight decay pulls matrices (embeddings, projections) towards 0; biases and
norm weights are left alone, so param_groups puts every parameter with dim >= 2
in a decayed group and the rest in a group with weight_decay 0.

The schedule: linear warmup from max_lr / warmup_steps at step 0 up to max_lr,
then a cosine from max_lr down to min_lr at max_steps, then min_lr.

Off limits here: torch.optim.Adam and torch.optim.AdamW.
"""

import math

import torch


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay; settings per parameter group, as torch.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # TODO: for each group, each p with a gradient: state (step t, m, v) in self.state[p], starting at zeros
        #       decay p by lr * weight_decay, update m and v, bias-correct, p -= lr * m̂ / (sqrt(v̂) + eps);
        #       at the end, return loss (the closure's, or None)
        raise NotImplementedError("07 optim: AdamW.step — for each group, each p with a gradient: state (step t, m, v) in self.state[p], starting at zeros")


def param_groups(model, weight_decay):
    """Two groups: parameters with dim >= 2 (decayed by weight_decay), the others (weight_decay 0)."""
    # TODO: model.parameters() lists a shared Parameter once; split by p.dim() >= 2
    raise NotImplementedError("07 optim: param_groups — model.parameters() lists a shared Parameter once; split by p.dim() >= 2")


def configure_optimizers(model, lr, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8):
    """AdamW over param_groups(model, weight_decay)."""
    # TODO: AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
    raise NotImplementedError("07 optim: configure_optimizers — AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)")


def lr_at(step, warmup_steps, max_steps, max_lr, min_lr):
    """Warmup (max_lr * (step + 1) / warmup_steps), then cosine to min_lr at max_steps, then min_lr."""
    # TODO: step < warmup_steps: max_lr * (step + 1) / warmup_steps; step >= max_steps: min_lr
    #       between: min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr), progress 0 -> 1
    raise NotImplementedError("07 optim: lr_at — step < warmup_steps: max_lr * (step + 1) / warmup_steps; step >= max_steps: min_lr")
