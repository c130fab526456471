"""12 muon, alternative implementation B (plain_loops): the classic momentum form (buf = momentum * buf + grad,
Nesterov grad + momentum * buf: a constant factor 1 / (1 - momentum) from torch's lerp form, which the
normalisation cancels), the iteration's products expanded (b A X + c A (A X)), the Frobenius norm summed by
hand, the AdamW step as 07's textbook formulas, groups chosen by parameter names."""

import math

import torch


def newton_schulz(G, steps=5, eps=1e-7, dtype=torch.bfloat16):
    """Orthogonalise a 2-D G (rows, cols) approximately: U S Vᵀ -> about U Vᵀ. Returns (rows, cols), G's dtype."""
    a, b, c = 3.4445, -4.7750, 2.0315
    transposed = False
    X = G.to(dtype)
    if X.shape[0] > X.shape[1]:
        X = X.t()
        transposed = True
    X = X / (torch.sqrt(torch.sum(X * X)) + eps)
    for _ in range(steps):
        A = X @ X.t()
        AX = A @ X
        X = a * X + b * AX + c * (A @ AX)
    if transposed:
        X = X.t()
    return X.to(G.dtype)


def _muon_step(p, state, lr, momentum, nesterov, ns_steps, weight_decay, ns_dtype):
    if "buf" not in state:
        state["buf"] = torch.zeros_like(p)
    state["buf"] = momentum * state["buf"] + p.grad
    if nesterov:
        direction = p.grad + momentum * state["buf"]
    else:
        direction = state["buf"]
    o = newton_schulz(direction, steps=ns_steps, dtype=ns_dtype)
    rows, cols = p.shape[0], p.shape[1]
    scale = math.sqrt(rows / cols) if rows > cols else 1.0
    p.sub_(lr * weight_decay * p)
    p.sub_(lr * scale * o)


def _adamw_step(p, state, lr, betas, eps, weight_decay):
    g = p.grad
    if "t" not in state:
        state["t"] = 0
        state["m"] = torch.zeros_like(p)
        state["v"] = torch.zeros_like(p)
    state["t"] = state["t"] + 1
    t = state["t"]
    b1, b2 = betas
    p.sub_(lr * weight_decay * p)
    state["m"] = b1 * state["m"] + (1 - b1) * g
    state["v"] = b2 * state["v"] + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1 ** t)
    v_hat = state["v"] / (1 - b2 ** t)
    p.sub_(lr * m_hat / (torch.sqrt(v_hat) + eps))


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters; settings per parameter group."""

    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0,
                 ns_dtype=torch.bfloat16):
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "ns_steps": ns_steps,
                    "weight_decay": weight_decay, "ns_dtype": ns_dtype}
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if len(p.shape) != 2:
                    raise ValueError("Muon: every parameter must be a matrix, got shape " + str(list(p.shape)))

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
                _muon_step(p, self.state[p], group["lr"], group["momentum"], group["nesterov"], group["ns_steps"],
                           group["weight_decay"], group["ns_dtype"])
        return loss


class MuonWithAdamW(torch.optim.Optimizer):
    """Groups with use_muon=True step with Muon, the others with AdamW."""

    def __init__(self, param_groups):
        super().__init__(param_groups, {})
        for group in self.param_groups:
            if group["use_muon"]:
                for p in group["params"]:
                    if len(p.shape) != 2:
                        raise ValueError("MuonWithAdamW: a Muon group holds a parameter of shape "
                                         + str(list(p.shape)))

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
                if group["use_muon"]:
                    _muon_step(p, self.state[p], group["lr"], group["momentum"], group["nesterov"],
                               group["ns_steps"], group["weight_decay"], group["ns_dtype"])
                else:
                    _adamw_step(p, self.state[p], group["lr"], group["betas"], group["eps"], group["weight_decay"])
        return loss


def configure_muon(model, muon_lr=0.02, adam_lr=3e-3, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8):
    """Group 0 (Muon): the attention and MLP weight matrices; group 1 (AdamW): every other parameter."""
    muon_params = []
    adam_params = []
    for name, p in model.named_parameters():
        parts = name.split(".")
        inside_block = parts[0] == "transformer" and parts[1] == "h"
        if inside_block and ("attn" in parts or "mlp" in parts) and parts[-1] == "weight" and len(p.shape) == 2:
            muon_params.append(p)
        else:
            adam_params.append(p)
    muon_group = {"params": muon_params, "use_muon": True, "lr": muon_lr, "initial_lr": muon_lr,
                  "momentum": 0.95, "nesterov": True, "ns_steps": 5, "weight_decay": weight_decay,
                  "ns_dtype": torch.bfloat16}
    adam_group = {"params": adam_params, "use_muon": False, "lr": adam_lr, "initial_lr": adam_lr,
                  "betas": betas, "eps": eps, "weight_decay": 0.0}
    return MuonWithAdamW([muon_group, adam_group])
