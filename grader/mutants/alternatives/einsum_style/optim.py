"""07 optim, alternative implementation A (einsum_style): torch-like arithmetic
(bias-corrected step size, denom = sqrt(v) / sqrt(1 - beta2^t) + eps), a cos² schedule."""

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
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1.0 - lr * wd)
                exp_avg.lerp_(grad, 1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                bias_correction1 = 1.0 - beta1 ** t
                bias_correction2 = 1.0 - beta2 ** t
                step_size = lr / bias_correction1
                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)
        return loss


def param_groups(model, weight_decay):
    """Two groups: parameters with dim >= 2 (decayed by weight_decay), the others (weight_decay 0)."""
    decay, no_decay = [], []
    for p in model.parameters():  # each shared Parameter once
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def configure_optimizers(model, lr, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8):
    """AdamW over param_groups(model, weight_decay)."""
    return AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps)


def lr_at(step, warmup_steps, max_steps, max_lr, min_lr):
    """Warmup (max_lr * (step + 1) / warmup_steps), then cosine to min_lr at max_steps, then min_lr."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    # 0.5 * (1 + cos(pi p)) == cos(pi p / 2)^2
    return min_lr + (max_lr - min_lr) * math.cos(0.5 * math.pi * progress) ** 2
