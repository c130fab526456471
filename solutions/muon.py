"""12 muon: the Muon optimizer for the matrices inside the blocks, AdamW for the rest.

Muon (MomentUm Orthogonalized by Newton-Schulz) keeps one momentum buffer per
2-D weight, like SGD with momentum, but steps along an *orthogonalised* version
of it: G = U S Vᵀ becomes roughly U Vᵀ, every singular value pushed towards 1.
A few directions with large gradients no longer dominate the step; rare
directions get as much as common ones.

Newton-Schulz: no SVD, only matrix products, cheap in bfloat16. Start from
X = G / (||G||_F + eps), so every singular value is at most 1; if G has more
rows than columns, work on Xᵀ, so that the Gram matrix A = X Xᵀ is the small
(short side x short side) one. Then `steps` times

    A = X Xᵀ
    X = a X + (b A + c A A) X          (a, b, c) = (3.4445, -4.7750, 2.0315)

Each step maps every singular value s of X to a s + b s³ + c s⁵. This quintic
is steep at 0 (slope 3.4445), so small singular values grow fast; it does not
converge to exactly 1: after 5 steps they sit in a band around 1 (about
0.7 .. 1.1 for a Gaussian matrix), which trains as well as U Vᵀ.
Transpose back at the end, and return G's dtype.

One Muon step for a weight p (rows x cols) with gradient g:

    buf = momentum * buf + (1 - momentum) * g           buf.lerp_(g, 1 - momentum)
    u   = (1 - momentum) * g + momentum * buf           g.lerp(buf, momentum)  (Nesterov; else u = buf)
    p   = p * (1 - lr * weight_decay)                    decoupled decay, with the unscaled lr
    p   = p - lr * sqrt(max(1, rows / cols)) * newton_schulz(u)

The sqrt(max(1, rows/cols)) factor keeps the update's size per entry the same
for tall matrices (an orthogonal rows x cols matrix with rows > cols has
smaller entries). Only 2-D parameters can be orthogonalised: embeddings,
lm_head (their rows are tokens, not directions of a hidden space), norm
weights and biases are trained by AdamW. configure_muon builds one optimizer
with two parameter groups, use_muon True and False, each keeping its own lr
and `initial_lr` (the training loop scales each group's lr by the schedule).

Off limits here: torch.optim.Muon.
"""

import math

import torch

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # (a, b, c), from Keller Jordan's Muon


def newton_schulz(G, steps=5, eps=1e-7, dtype=torch.bfloat16):
    """Orthogonalise a 2-D G (rows, cols) approximately: U S Vᵀ -> about U Vᵀ. Returns (rows, cols), G's dtype.

    The iteration runs in `dtype`; the Gram matrix X Xᵀ is built on the short side (a tall G is transposed).
    """
    ### BEGIN SOLUTION
    ### TODO: X = G in dtype, transposed if G has more rows than columns; X = X / (||X||_F + eps)
    ### TODO: steps times: A = X Xᵀ, X = a X + (b A + c A A) X with (a, b, c) = NS_COEFFICIENTS
    ### TODO: transpose back if you transposed; return it in G's dtype
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    tall = G.size(0) > G.size(1)
    if tall:
        X = X.mT
    X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.mT
        B = torch.addmm(A, A, A, beta=b, alpha=c)  # b * A + c * A @ A, rounded once (as torch.optim.Muon)
        X = torch.addmm(X, B, X, beta=a)  # a * X + B @ X
    if tall:
        X = X.mT
    return X.to(G.dtype)
    ### END SOLUTION


def muon_update(p, state, group):
    """One Muon step for the 2-D parameter p, from p.grad (left unchanged).

    state: p's dict in optimizer.state (its "momentum_buffer" lives there); group: the settings
    lr, momentum, nesterov, ns_steps, weight_decay, ns_dtype.
    """
    ### BEGIN SOLUTION
    ### TODO: buf (a zero tensor like p the first time) <- lerp towards p.grad by 1 - momentum
    ### TODO: update = p.grad.lerp(buf, momentum) with nesterov, else buf; orthogonalise it with newton_schulz
    ### TODO: p *= 1 - lr * weight_decay; p -= lr * sqrt(max(1, rows / cols)) * the orthogonalised update
    grad = p.grad
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(p)
    buf = state["momentum_buffer"]
    lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
    buf.lerp_(grad, 1 - momentum)
    update = grad.lerp(buf, momentum) if group["nesterov"] else buf
    update = newton_schulz(update, steps=group["ns_steps"], dtype=group["ns_dtype"])
    rows, cols = p.shape
    p.mul_(1 - lr * weight_decay)
    p.add_(update, alpha=-lr * math.sqrt(max(1, rows / cols)))
    ### END SOLUTION


def adamw_update(p, state, group):
    """One AdamW step (exercise 07's algorithm) for the parameter p, from p.grad.

    state: p's dict in optimizer.state ("step", "exp_avg", "exp_avg_sq"); group: lr, betas, eps, weight_decay.
    """
    ### BEGIN SOLUTION
    ### TODO: your 07 AdamW step for one parameter: t += 1, decay p, update m and v, bias-correct, step
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
    state["step"] += 1
    t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
    lr, (beta1, beta2) = group["lr"], group["betas"]
    p.mul_(1 - lr * group["weight_decay"])
    m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-lr)
    ### END SOLUTION


def check_2d(param_groups, what):
    """ValueError (one sentence) for a parameter that Muon cannot orthogonalise."""
    ### BEGIN SOLUTION
    ### TODO: for every p of every group: if p is not 2-D, raise ValueError naming its shape
    for group in param_groups:
        for p in group["params"]:
            if p.dim() != 2:
                raise ValueError(f"{what} updates 2-D matrices only, but got a parameter of shape {tuple(p.shape)} "
                                 f"({p.dim()}-D): give embeddings, norm weights and biases to AdamW "
                                 f"(configure_muon does).")
    ### END SOLUTION


class Muon(torch.optim.Optimizer):
    """Muon for 2-D parameters; settings per parameter group, as torch.optim.Muon (whose defaults differ)."""

    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, weight_decay=0.0,
                 ns_dtype=torch.bfloat16):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay,
                        ns_dtype=ns_dtype)
        super().__init__(params, defaults)
        check_2d(self.param_groups, "Muon")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        ### BEGIN SOLUTION
        ### TODO: for each group, each p with a gradient: muon_update(p, self.state[p], group); return loss
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    muon_update(p, self.state[p], group)
        return loss
        ### END SOLUTION


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer, two kinds of groups: use_muon=True groups step with Muon, the others with AdamW.

    Each group carries all its settings (configure_muon writes them): a Muon group lr, momentum, nesterov,
    ns_steps, weight_decay, ns_dtype; an AdamW group lr, betas, eps, weight_decay.
    """

    def __init__(self, param_groups):
        super().__init__(param_groups, defaults={})
        missing = [i for i, group in enumerate(self.param_groups) if "use_muon" not in group]
        if missing:
            raise ValueError(f"MuonWithAdamW: group(s) {missing} have no 'use_muon' key; say which optimizer "
                             f"each group belongs to (True: Muon, False: AdamW).")
        check_2d([g for g in self.param_groups if g["use_muon"]], "MuonWithAdamW's Muon group")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        ### BEGIN SOLUTION
        ### TODO: for each group, each p with a gradient: muon_update if group["use_muon"], else adamw_update
        ### TODO: (each with self.state[p] and the group); return loss
        for group in self.param_groups:
            update = muon_update if group["use_muon"] else adamw_update
            for p in group["params"]:
                if p.grad is not None:
                    update(p, self.state[p], group)
        return loss
        ### END SOLUTION


def configure_muon(model, muon_lr=0.02, adam_lr=3e-3, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8):
    """MuonWithAdamW with two groups: [0] use_muon=True, every 2-D weight inside the blocks (transformer.h);
    [1] use_muon=False, everything else (wte, wpe, lm_head, norm weights, biases), weight_decay 0.
    Each group keeps initial_lr = its lr, for the training loop's schedule."""
    ### BEGIN SOLUTION
    ### TODO: two groups: the 2-D weights whose name starts with "transformer.h." (Muon), all other parameters (AdamW)
    ### TODO: (named_parameters lists a tied Parameter once); both with use_muon, lr and initial_lr; Muon: momentum
    ### TODO: 0.95, nesterov True, ns_steps 5, ns_dtype bfloat16, weight_decay; AdamW: betas, eps, weight_decay 0.0
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    hidden = [p for name, p in named if name.startswith("transformer.h.") and p.dim() == 2]
    chosen = {id(p) for p in hidden}
    rest = [p for _, p in named if id(p) not in chosen]
    groups = [
        dict(params=hidden, use_muon=True, lr=muon_lr, initial_lr=muon_lr, momentum=0.95, nesterov=True,
             ns_steps=5, weight_decay=weight_decay, ns_dtype=torch.bfloat16),
        dict(params=rest, use_muon=False, lr=adam_lr, initial_lr=adam_lr, betas=betas, eps=eps, weight_decay=0.0),
    ]
    return MuonWithAdamW(groups)
    ### END SOLUTION
