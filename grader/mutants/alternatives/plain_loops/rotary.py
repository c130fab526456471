"""02 rotary, alternative implementation B (plain_loops): frequencies listed in Python (float64),
tables rounded to float32 at the end; rotate_half via roll and a sign flip; rotation computed
in at least float32 and cast back to x's dtype."""

import math

import torch


def rotary_cos_sin(seq_len, head_dim, base=10000.0, device=None):
    """cos and sin tables, each (seq_len, head_dim) float32, for positions 0 .. seq_len - 1."""
    half = head_dim // 2
    theta = [math.pow(base, -2.0 * i / head_dim) for i in range(half)]
    theta = torch.tensor(theta + theta, dtype=torch.float64, device=device)  # repeated twice: (head_dim,)
    positions = torch.arange(seq_len, dtype=torch.float64, device=device)
    angles = positions[:, None] * theta[None, :]  # (T, head_dim)
    return torch.cos(angles).to(torch.float32), torch.sin(angles).to(torch.float32)


def rotate_half(x):
    """(..., D) -> (..., D): the halves x1 = x[..., :D/2], x2 = x[..., D/2:] become cat(-x2, x1)."""
    D = x.shape[-1]
    half = D // 2
    rolled = torch.roll(x, shifts=half, dims=-1)  # cat(x2, x1)
    sign = torch.ones(D, dtype=x.dtype, device=x.device)
    sign[:half] = -1
    return rolled * sign


def apply_rotary(x, cos, sin):
    """x: (B, H, T, head_dim); cos, sin: (T, head_dim). Returns x rotated, same shape and dtype."""
    dt = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dt)
    out = xf * cos.to(dt) + rotate_half(xf) * sin.to(dt)
    return out.to(x.dtype)
