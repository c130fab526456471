"""12 muon, alternative implementation A (einsum_style): products as einsums, G normalised in its own dtype
before the cast, a tall G kept as it is with its Gram matrix Xᵀ X taken on the right, torch.lerp with
explicit weights, Muon and AdamW groups found through the blocks' modules."""

import math

import torch
import torch.nn as nn

A_COEF, B_COEF, C_COEF = 3.4445, -4.7750, 2.0315


def newton_schulz(G, steps=5, eps=1e-7, dtype=torch.bfloat16):
    """Orthogonalise a 2-D G (rows, cols) approximately: U S Vᵀ -> about U Vᵀ. Returns (rows, cols), G's dtype."""
    X = (G / (torch.linalg.matrix_norm(G, ord="fro") + eps)).to(dtype)
    if G.shape[0] > G.shape[1]:
        # tall: X (I - ...) with the small Gram matrix on the right, Xᵀ X (cols x cols): p(X Xᵀ) X = X p(Xᵀ X)
        for _ in range(steps):
            A = torch.einsum("ki,kj->ij", X, X)
            poly = B_COEF * A + C_COEF * torch.einsum("ij,jk->ik", A, A)
            X = A_COEF * X + torch.einsum("ij,jk->ik", X, poly)
    else:
        for _ in range(steps):
            A = torch.einsum("ik,jk->ij", X, X)
            poly = B_COEF * A + C_COEF * torch.einsum("ij,jk->ik", A, A)
            X = A_COEF * X + torch.einsum("ij,jk->ik", poly, X)
    return X.to(G.dtype)


def _check(groups, who):
    for group in groups:
        for p in group["params"]:
            if p.ndim != 2:
                raise ValueError(f"{who} only takes 2-D parameters; one has shape {tuple(p.shape)}.")


def _muon(p, state, group):
    g = p.grad
    buf = state.get("momentum_buffer")
    if buf is None:
        buf = state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    mu = group["momentum"]
    torch.lerp(buf, g, 1.0 - mu, out=buf)
    direction = torch.lerp(g, buf, mu) if group["nesterov"] else buf
    ortho = newton_schulz(direction, steps=group["ns_steps"], dtype=group["ns_dtype"])
    n_rows, n_cols = p.shape
    lr = group["lr"]
    p.mul_(1.0 - lr * group["weight_decay"])
    p.add_(ortho, alpha=-(lr * max(1.0, n_rows / n_cols) ** 0.5))


def _adamw(p, state, group):
    g = p.grad
    if len(state) == 0:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    state["step"] += 1
    t = state["step"]
    beta1, beta2 = group["betas"]
    lr = group["lr"]
    p.mul_(1.0 - lr * group["weight_decay"])
    state["exp_avg"].lerp_(g, 1.0 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
    denom = (state["exp_avg_sq"].sqrt() / math.sqrt(1.0 - beta2**t)).add_(group["eps"])
    p.addcdiv_(state["exp_avg"], denom, value=-lr / (1.0 - beta1**t))


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters; settings per parameter group."""

    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0,
                 ns_dtype=torch.bfloat16):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                      weight_decay=weight_decay, ns_dtype=ns_dtype))
        _check(self.param_groups, "Muon")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in (q for q in group["params"] if q.grad is not None):
                _muon(p, self.state[p], group)
        return loss


class MuonWithAdamW(torch.optim.Optimizer):
    """use_muon=True groups step with Muon, the others with AdamW."""

    def __init__(self, param_groups):
        super().__init__(param_groups, {})
        _check([g for g in self.param_groups if g["use_muon"]], "MuonWithAdamW's Muon group")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in (q for q in group["params"] if q.grad is not None):
                (_muon if group["use_muon"] else _adamw)(p, self.state[p], group)
        return loss


def configure_muon(model, muon_lr=0.02, adam_lr=3e-3, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8):
    """Group 0: the Linear weights of the blocks (Muon); group 1: everything else (AdamW, no decay)."""
    hidden, seen = [], set()
    for block in model.transformer.h:
        for module in block.modules():
            if isinstance(module, nn.Linear) and id(module.weight) not in seen:
                seen.add(id(module.weight))
                hidden.append(module.weight)
    others = [p for p in model.parameters() if id(p) not in seen]
    return MuonWithAdamW([
        {"params": hidden, "use_muon": True, "lr": muon_lr, "initial_lr": muon_lr, "momentum": 0.95,
         "nesterov": True, "ns_steps": 5, "weight_decay": weight_decay, "ns_dtype": torch.bfloat16},
        {"params": others, "use_muon": False, "lr": adam_lr, "initial_lr": adam_lr, "betas": betas, "eps": eps,
         "weight_decay": 0.0},
    ])
