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
        ### BEGIN SOLUTION
        ### TODO: for each group, each p with a gradient: state (step t, m, v) in self.state[p], starting at zeros
        ### TODO: decay p by lr * weight_decay, update m and v, bias-correct, p -= lr * m̂ / (sqrt(v̂) + eps);
        ### TODO: at the end, return loss (the closure's, or None)
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * group["weight_decay"])
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)
        return loss
        ### END SOLUTION


def param_groups(model, weight_decay):
    """Two groups: parameters with dim >= 2 (decayed by weight_decay), the others (weight_decay 0)."""
    ### BEGIN SOLUTION
    ### TODO: model.parameters() lists a shared Parameter once; split by p.dim() >= 2
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    ### END SOLUTION


def configure_optimizers(model, lr, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8):
    """AdamW over param_groups(model, weight_decay)."""
    ### BEGIN SOLUTION
    ### TODO: AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
    return AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)
    ### END SOLUTION


def lr_at(step, warmup_steps, max_steps, max_lr, min_lr):
    """Warmup (max_lr * (step + 1) / warmup_steps), then cosine to min_lr at max_steps, then min_lr."""
    ### BEGIN SOLUTION
    ### TODO: step < warmup_steps: max_lr * (step + 1) / warmup_steps; step >= max_steps: min_lr
    ### TODO: between: min_lr + 0.5 * (1 + cos(pi * progress)) * (max_lr - min_lr), progress 0 -> 1
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    ### END SOLUTION
