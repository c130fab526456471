"""07 optim, alternative implementation B (plain_loops): the textbook formulas with m̂ and v̂,
state kept under its own names, param groups built from names, a piecewise schedule."""

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
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                if "t" not in st:
                    st["t"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                st["t"] = st["t"] + 1
                t = st["t"]
                b1, b2 = group["betas"]
                lr = group["lr"]
                # decoupled weight decay
                p.sub_(lr * group["weight_decay"] * p)
                st["m"] = b1 * st["m"] + (1 - b1) * g
                st["v"] = b2 * st["v"] + (1 - b2) * g * g
                m_hat = st["m"] / (1 - b1 ** t)
                v_hat = st["v"] / (1 - b2 ** t)
                p.sub_(lr * m_hat / (torch.sqrt(v_hat) + group["eps"]))
        return loss


def param_groups(model, weight_decay):
    """Two groups: parameters with dim >= 2 (decayed by weight_decay), the others (weight_decay 0)."""
    named = dict(model.named_parameters())  # shared Parameters appear under their first name only
    decay_names = [n for n, p in named.items() if p.ndim >= 2]
    other_names = [n for n, p in named.items() if p.ndim < 2]
    return [
        dict(params=[named[n] for n in decay_names], weight_decay=weight_decay),
        dict(params=[named[n] for n in other_names], weight_decay=0.0),
    ]


def configure_optimizers(model, lr, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8):
    """AdamW over param_groups(model, weight_decay)."""
    groups = param_groups(model, weight_decay)
    return AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def lr_at(step, warmup_steps, max_steps, max_lr, min_lr):
    """Warmup (max_lr * (step + 1) / warmup_steps), then cosine to min_lr at max_steps, then min_lr."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps * max_lr
    if step > max_steps or step == max_steps:
        return min_lr
    decay_ratio = (step - warmup_steps) / (max_steps - warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (max_lr - min_lr)
